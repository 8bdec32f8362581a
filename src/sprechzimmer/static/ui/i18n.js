// @ts-check
/**
 * The browser's message catalog: the same German translations as the
 * pages, fetched from /i18n/<lang>.json. English text is the key.
 */

/** @type {Record<string, string>} */
let catalog = {};

/** Load the catalog of the page's language (from <body data-lang>). */
export async function loadCatalog() {
  const language = document.body.dataset.lang || "en";
  if (language === "en") return;
  const response = await fetch(`/i18n/${language}.json`, { credentials: "same-origin" });
  if (response.ok) catalog = await response.json();
}

/**
 * Mark text for `pybabel extract` where it is defined (a table, say) and
 * translated later with t(); returns the text unchanged.
 * @param {string} text
 */
export function N_(text) {
  return text;
}

/**
 * Translate, then fill {name} placeholders.
 * @param {string} text
 * @param {Record<string, string|number>} [values]
 */
export function t(text, values) {
  let result = catalog[text] || text;
  for (const [name, value] of Object.entries(values ?? {})) {
    result = result.replaceAll(`{${name}}`, String(value));
  }
  return result;
}
