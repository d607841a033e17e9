// A page shown over the designer (Secrets, Inbox): what showing one does to the
// rest of the Studio, and how the hash (`view=<name>`) opens and closes it, so
// the browser's back button works. Each page keeps only what it shows.

import { clear } from "./util.js";

/**
 * Show or hide the page of id `<name>-page` (routes.js calls this on every hash
 * change); `render` fills it when it opens, and its `<name>-title` takes focus.
 * @param {string} name
 * @param {boolean} shown
 * @param {() => void} render
 */
export function showOverPage(name, shown, render) {
  const page = document.getElementById(`${name}-page`);
  if (shown === !page.hidden) return;
  page.hidden = !shown;
  // What the page covers is out of reach of the keyboard and screen readers.
  for (const covered of document.querySelectorAll(
    ".app > .sidebar, .app > .center",
  ))
    covered.inert = shown;
  document
    .getElementById(`btn-${name}`)
    .setAttribute("aria-pressed", String(shown));
  if (!shown) {
    clear(page);
    return;
  }
  render();
  document.getElementById(`${name}-title`).focus();
}

/**
 * Go to the page or leave it, keeping the rest of the hash (`process=`).
 * @param {string} name
 * @param {boolean} shown
 */
export function navigateOverPage(name, shown) {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (shown) params.set("view", name);
  else params.delete("view");
  location.hash = params.toString();
}
