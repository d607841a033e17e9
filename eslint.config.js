// ESLint flat config for the Studio: plain browser ES modules, no bundler.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["services/roles/studio/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    rules: {
      // `const { dropped, ...kept } = obj` is how the Studio omits keys.
      "no-unused-vars": ["error", { ignoreRestSiblings: true }],
    },
  },
];
