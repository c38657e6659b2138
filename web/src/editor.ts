/**
 * The code editor: a monospace `<textarea>` with a line-number gutter. Tab inserts four
 * spaces and Shift+Tab removes up to four at the line start; Escape releases the next Tab so
 * keyboard users can leave the editor.
 */
import { el } from "./dom.js";

export function codeEditor(id: string, labelText: string): { root: HTMLElement; textarea: HTMLTextAreaElement } {
  const textarea = el("textarea", { id, class: "code", spellcheck: "false", autocapitalize: "off", autocomplete: "off", wrap: "off", rows: "12", "aria-describedby": `${id}-help` });
  const gutter = el("pre", { class: "gutter", "aria-hidden": "true" }, "1");
  let release = false;
  const renumber = () => {
    const n = textarea.value.split("\n").length;
    gutter.textContent = Array.from({ length: n }, (_, i) => String(i + 1)).join("\n");
    gutter.scrollTop = textarea.scrollTop;
  };
  textarea.addEventListener("input", renumber);
  textarea.addEventListener("scroll", () => { gutter.scrollTop = textarea.scrollTop; });
  textarea.addEventListener("blur", () => { release = false; });
  textarea.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { release = true; return; }
    if (e.key !== "Tab" || release || e.ctrlKey || e.altKey || e.metaKey) return;
    e.preventDefault();
    const { selectionStart: s, selectionEnd: end, value } = textarea;
    if (!e.shiftKey) {
      textarea.setRangeText("    ", s, end, "end");
    } else {
      const lineStart = value.lastIndexOf("\n", s - 1) + 1;
      const spaces = /^ {1,4}/.exec(value.slice(lineStart))?.[0].length ?? 0;
      if (spaces > 0) textarea.setRangeText("", lineStart, lineStart + spaces, "end");
    }
    renumber();
  });
  const root = el("div", { class: "editor-wrap" },
    el("label", { for: id }, labelText),
    el("div", { class: "editor" }, gutter, textarea),
    el("p", { id: `${id}-help`, class: "help" }, "Tab inserts four spaces, Shift+Tab removes them; press Escape, then Tab, to move on."));
  return { root, textarea };
}
