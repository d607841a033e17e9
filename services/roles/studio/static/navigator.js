// The left tree: projects → apps → processes of the tenant, with versions.

import { api } from "./api.js";
import { clear, Emitter, h, s, svgFragment } from "./util.js";

function icon(markup) {
  const node = s("svg", {
    viewBox: "0 0 24 24",
    width: 15,
    height: 15,
    fill: "none",
    stroke: "currentColor",
    "stroke-width": 2,
    "stroke-linecap": "round",
    "stroke-linejoin": "round",
    "aria-hidden": "true",
  });
  node.append(...svgFragment(markup));
  return node;
}
const FOLDER =
  '<path d="M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z"/>';
const APP =
  '<rect x="3" y="3" width="7" height="7" rx="1.5"/><rect x="14" y="3" width="7" height="7" rx="1.5"/><rect x="3" y="14" width="7" height="7" rx="1.5"/><rect x="14" y="14" width="7" height="7" rx="1.5"/>';
const FLOW =
  '<circle cx="5" cy="6" r="2.2"/><circle cx="19" cy="6" r="2.2"/><circle cx="12" cy="18" r="2.2"/><path d="M7.2 6h9.6M6.2 8l4.6 8M17.8 8l-4.6 8"/>';

/**
 * `GET /api/v1/projects` answers a list of ProjectOut, `GET /api/v1/processes`
 * one of ProcessSummary (projections/catalog.py). Only the fields read here:
 *
 * @typedef {object} ProjectOut
 * @property {string} project_id
 * @property {string} name
 * @property {{app_id: string, name: string, processes: {process_id: string, name: string}[]}[]} apps
 *
 * @typedef {object} ProcessSummary
 * @property {string} process_id
 * @property {number} latest_version
 */

/**
 * The tree as the navigator draws it: [{id, name, apps: [{id, name,
 * processes: [{id, name, version}]}]}]. A listed process carries no version:
 * `load` takes it from the process list.
 *
 * @param {ProjectOut[]} projects
 */
export function normalizeProjects(projects) {
  return projects.map((p) => ({
    id: p.project_id,
    name: p.name || "(unnamed project)",
    apps: p.apps.map((a) => ({
      id: a.app_id,
      name: a.name || "(unnamed app)",
      processes: a.processes.map((pr) => ({
        id: pr.process_id,
        name: pr.name || "(unnamed process)",
        version: null,
      })),
    })),
  }));
}

export class Navigator extends Emitter {
  constructor(root) {
    super();
    this.root = root;
    this.projects = [];
    this.activeId = null;
    this.collapsed = new Set();
    this.loaded = false;
    this.error = null;
  }

  async load() {
    try {
      // Projects give the tree; the process list gives each process's latest version.
      const [tree, processes] = await Promise.all([
        api("GET", "/api/v1/projects"),
        api("GET", "/api/v1/processes").catch(() => null),
      ]);
      this.projects = normalizeProjects(tree);
      const latest = new Map(
        (processes ?? []).map((/** @type {ProcessSummary} */ p) => [
          p.process_id,
          p.latest_version,
        ]),
      );
      for (const project of this.projects) {
        for (const app of project.apps) {
          for (const process of app.processes)
            process.version = latest.get(process.id) ?? null;
        }
      }
      this.error = null;
    } catch (err) {
      this.error = err.message;
    }
    this.loaded = true;
    this.render();
    return this.projects;
  }

  find(processId) {
    for (const project of this.projects) {
      for (const app of project.apps) {
        for (const process of app.processes) {
          if (process.id === processId) return { project, app, process };
        }
      }
    }
    return null;
  }

  setActive(processId) {
    this.activeId = processId;
    const found = processId ? this.find(processId) : null;
    if (found) {
      this.collapsed.delete(`p:${found.project.id}`);
      this.collapsed.delete(`a:${found.project.id}/${found.app.id}`);
    }
    this.render();
  }

  render() {
    clear(this.root);
    if (!this.loaded) {
      this.root.append(h("div", { class: "tree-empty" }, "Loading…"));
      return;
    }
    if (this.error) {
      this.root.append(
        h(
          "div",
          { class: "tree-empty" },
          `Could not load processes: ${this.error}`,
        ),
      );
      return;
    }
    if (!this.projects.length) {
      this.root.append(
        h(
          "div",
          { class: "tree-empty" },
          "No processes yet. Create one with “New process”.",
        ),
      );
      return;
    }
    for (const project of this.projects) {
      const pKey = `p:${project.id}`;
      const pOpen = !this.collapsed.has(pKey);
      this.root.append(
        h(
          "button",
          {
            type: "button",
            class: `tree-row project ${pOpen ? "open" : ""}`,
            role: "treeitem",
            "aria-expanded": String(pOpen),
            onClick: () => this._toggle(pKey),
          },
          h("span", { class: "chev" }, "▶"),
          h("span", { class: "tree-icon" }, icon(FOLDER)),
          h("span", { class: "label", title: project.name }, project.name),
        ),
      );
      if (!pOpen) continue;
      for (const app of project.apps) {
        const aKey = `a:${project.id}/${app.id}`;
        const aOpen = !this.collapsed.has(aKey);
        this.root.append(
          h(
            "button",
            {
              type: "button",
              class: `tree-row app-row ${aOpen ? "open" : ""}`,
              role: "treeitem",
              "aria-expanded": String(aOpen),
              onClick: () => this._toggle(aKey),
            },
            h("span", { class: "chev" }, "▶"),
            h("span", { class: "tree-icon" }, icon(APP)),
            h("span", { class: "label", title: app.name }, app.name),
          ),
        );
        if (!aOpen) continue;
        for (const process of app.processes) {
          this.root.append(
            h(
              "button",
              {
                type: "button",
                class: `tree-row process ${process.id === this.activeId ? "active" : ""}`,
                role: "treeitem",
                "data-process-id": process.id,
                title: `${project.name} / ${app.name} / ${process.name}`,
                onClick: () =>
                  this.emit("open", {
                    id: process.id,
                    project: project.name,
                    app: app.name,
                    name: process.name,
                    latest: process.version,
                  }),
              },
              h("span", { class: "tree-icon" }, icon(FLOW)),
              h("span", { class: "label" }, process.name),
              process.version
                ? h("span", { class: "vpill" }, `v${process.version}`)
                : null,
            ),
          );
        }
      }
    }
  }

  _toggle(key) {
    if (this.collapsed.has(key)) this.collapsed.delete(key);
    else this.collapsed.add(key);
    this.render();
  }

  projectNames() {
    return this.projects.map((p) => p.name);
  }

  appNames(projectName) {
    const project = this.projects.find((p) => p.name === projectName);
    return project
      ? project.apps.map((a) => a.name)
      : [...new Set(this.projects.flatMap((p) => p.apps.map((a) => a.name)))];
  }
}
