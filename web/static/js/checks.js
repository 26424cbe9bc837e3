// The Checks tab: HTML compatibility, links, spam score and authentication of one message.
// Each check runs when its section is opened (or "Run again" is pressed); the server caches
// results per message. Everything shown goes in as text (dom.js), never parsed as HTML.

import { h, replace } from "./dom.js";

const id = (value) => encodeURIComponent(value);

async function getJson(path, params = {}) {
  const url = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(params)) if (value) url.searchParams.set(key, value);
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.Error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

const VERDICT = {
  pass: ["good", "pass"],
  fail: ["bad", "fail"],
  softfail: ["warn", "soft fail"],
  neutral: ["warn", "neutral"],
  none: ["muted", "none"],
  policy: ["muted", "not checked"],
  temperror: ["warn", "DNS error"],
  permerror: ["bad", "broken"],
};

function badge(result) {
  const [tone, label] = VERDICT[result] || ["muted", result];
  return h("span", { class: `check-badge ${tone}`, text: label });
}

const EXPLAIN = {
  dkim: "DKIM: a signature over the message, checked against the key the domain publishes in DNS.",
  spf: "SPF: whether the sending machine's address may send mail for the envelope sender's domain.",
  dmarc: "DMARC: whether SPF or DKIM passed for the domain in From, and what that domain asks receivers to do otherwise.",
  arc: "ARC: signatures forwarders add, so a receiver can trust results from before a forward.",
};

function html(result) {
  const total = result.Total;
  const rows = result.Warnings.slice(0, 40).map((warning) =>
    h(
      "li",
      { class: "check-row" },
      h("strong", { text: warning.Title }),
      ` — used ${warning.Score.Found}×; `,
      h("span", { class: "good", text: `${Math.round(warning.Score.Supported)}% yes` }),
      ", ",
      h("span", { class: "warn", text: `${Math.round(warning.Score.Partial)}% partly` }),
      ", ",
      h("span", { class: "bad", text: `${Math.round(warning.Score.Unsupported)}% no` }),
      warning.URL ? [" ", h("a", { href: warning.URL, target: "_blank", rel: "noopener noreferrer", text: "details" })] : "",
    ),
  );
  return [
    h("p", {
      class: "check-summary",
      text: `${total.Supported.toFixed(1)}% of mail clients render what this message uses as intended (${total.Partial.toFixed(1)}% partly, ${total.Unsupported.toFixed(1)}% not). Worst supported features first:`,
    }),
    rows.length ? h("ul", { class: "check-list" }, rows) : h("p", { text: "No features with support problems." }),
  ];
}

function links(result) {
  if (!result.Links.length) return [h("p", { text: "The message has no http or https links." })];
  return [
    h("p", {
      class: "check-summary",
      text: result.Errors ? `${result.Errors} of ${result.Links.length} links are broken.` : `All ${result.Links.length} links answer.`,
    }),
    h(
      "ul",
      { class: "check-list" },
      result.Links.map((link) =>
        h(
          "li",
          { class: "check-row" },
          h("span", { class: `check-badge ${link.StatusCode && link.StatusCode < 400 ? "good" : "bad"}`, text: String(link.StatusCode || "—") }),
          " ",
          h("code", { text: link.URL }),
          ` ${link.Status}`,
        ),
      ),
    ),
  ];
}

function spam(result) {
  if (result.Error) return [h("p", { class: "panel-note error", text: `SpamAssassin could not check it: ${result.Error}` })];
  return [
    h(
      "p",
      { class: "check-summary" },
      badge(result.IsSpam ? "fail" : "pass"),
      ` Score ${result.Score}: ${result.IsSpam ? "SpamAssassin would call this spam." : "SpamAssassin would not call this spam."} Rules that fired:`,
    ),
    h(
      "ul",
      { class: "check-list" },
      result.Rules.map((rule) => h("li", { class: "check-row" }, h("code", { text: `${rule.Score > 0 ? "+" : ""}${rule.Score} ${rule.Name}` }), ` ${rule.Description}`)),
    ),
  ];
}

function auth(result) {
  const row = (name, part) => h("li", { class: "check-row" }, badge(part.Result), " ", h("strong", { text: name.toUpperCase() }), ` ${part.Reason || ""}`, h("div", { class: "check-explain", text: EXPLAIN[name] }));
  return [
    h("p", { class: "check-summary", text: "As a receiving mail server would find it:" }),
    h("ul", { class: "check-list" }, row("dkim", result.DKIM), row("spf", result.SPF), row("dmarc", result.DMARC), row("arc", result.ARC)),
    h("pre", { class: "check-header", text: `Authentication-Results: ${result.AuthenticationResults}` }),
  ];
}

const SECTIONS = [
  { name: "html", title: "HTML compatibility", route: "html-check", render: html },
  { name: "links", title: "Links", route: "link-check", render: links, params: { follow: "true" } },
  { name: "spam", title: "Spam score", route: "sa-check", render: spam, needs: "SpamAssassin" },
  { name: "auth", title: "Authentication", route: "auth-check", render: auth },
];

/** The Checks tab for one message, in `panel`. */
export async function showChecks(panel, messageId) {
  let settings = {};
  try {
    settings = await getJson("api/v1/checks");
  } catch {
    // an older server: every section just tries
  }
  replace(panel, h("div", { class: "checks" }, SECTIONS.map((section) => checkSection(section, messageId, settings))));
}

function checkSection(section, messageId, settings) {
  const body = h("div", { class: "check-body" });
  const run = async (refresh) => {
    replace(body, h("p", { class: "panel-note loading", text: "Checking…" }));
    try {
      const result = await getJson(`api/v1/message/${id(messageId)}/${section.route}`, { ...section.params, refresh: refresh ? "1" : "" });
      replace(body, section.render(result));
    } catch (error) {
      const note = error.status === 400 ? `Not possible: ${error.message}` : `Could not check: ${error.message}`;
      replace(body, h("p", { class: "panel-note error", text: note }));
    }
  };
  const again = h("button", { type: "button", class: "button check-again", text: "Run again", onclick: () => run(true) });
  const details = h("details", { class: "check", dataset: { check: section.name } }, h("summary", { text: section.title }), again, body);
  if (section.needs && settings[section.needs] === false) {
    replace(body, h("p", { class: "panel-note", text: "Not configured: start Mailtrap with --spamassassin HOST:PORT to score messages with SpamAssassin." }));
    again.hidden = true;
    return details;
  }
  let started = false;
  details.addEventListener("toggle", () => {
    if (details.open && !started) {
      started = true;
      run(false);
    }
  });
  return details;
}
