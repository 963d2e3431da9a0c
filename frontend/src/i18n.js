// The canvas's words in the user's language. The page embeds Django's
// JavaScript catalog (domain "djangojs") as JSON in #lf-i18n, so no extra
// request can fail; a page that loads the JavaScriptCatalog script instead
// (window.django) works too, and with neither every string stays English.
// Strings are marked with these functions, by these names, so that
// `makemessages -d djangojs` finds them.

let loaded = null;

function catalog() {
  if (loaded) return loaded;
  loaded = { messages: {}, plural: (n) => (n === 1 ? 0 : 1) };
  const source = typeof document !== "undefined" && document.getElementById("lf-i18n");
  if (source) {
    try {
      const data = JSON.parse(source.textContent);
      loaded.messages = data.catalog || {};
      if (data.plural) loaded.plural = pluralFunction(data.plural);
    } catch {
      // A broken catalog leaves the canvas in English rather than blank.
    }
  } else if (typeof window !== "undefined" && window.django && window.django.catalog) {
    loaded.messages = window.django.catalog;
    if (window.django.pluralidx) loaded.plural = (n) => Number(window.django.pluralidx(n));
  }
  return loaded;
}

// The catalog's Plural-Forms expression, e.g. "(n != 1)", as a function; only
// numbers, n and operators are accepted.
function pluralFunction(expression) {
  if (!/^[\sn0-9()!=<>&|?:%+*/-]+$/.test(expression)) return (n) => (n === 1 ? 0 : 1);
  try {
    // eslint-disable-next-line no-new-func
    const compiled = new Function("n", `return Number(${expression});`);
    return (n) => compiled(n);
  } catch {
    return (n) => (n === 1 ? 0 : 1);
  }
}

export function gettext(msgid) {
  const value = catalog().messages[msgid];
  if (value === undefined || value === "") return msgid;
  return typeof value === "string" ? value : value[0];
}

export function ngettext(singular, plural, count) {
  const { messages, plural: index } = catalog();
  const value = messages[singular];
  const which = index(count);
  if (Array.isArray(value) && value[which]) return value[which];
  return count === 1 ? singular : plural;
}

export function pgettext(context, msgid) {
  const translated = gettext(`${context}\x04${msgid}`);
  return translated.includes("\x04") ? msgid : translated;
}

// Django's interpolate: "%(name)s" from an object when named, else "%s" in turn.
export function interpolate(format, values, named = false) {
  if (named) return format.replace(/%\(\w+\)s/g, (match) => String(values[match.slice(2, -2)]));
  let index = 0;
  return format.replace(/%s/g, () => String(values[index++]));
}

// The page's language (<html lang>), for numbers and dates.
export function pageLocale() {
  const lang = typeof document !== "undefined" && document.documentElement.lang;
  return lang || "en";
}

export function formatNumber(value) {
  const number = Number(value);
  if (!Number.isFinite(number)) return String(value);
  try {
    return new Intl.NumberFormat(pageLocale()).format(number);
  } catch {
    return String(number);
  }
}

export function formatDate(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  try {
    return date.toLocaleDateString(pageLocale());
  } catch {
    return date.toLocaleDateString();
  }
}
