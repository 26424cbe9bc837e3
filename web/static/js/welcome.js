// The empty inbox: where to send mail, read from /api/v1/webui.

import * as api from "./api.js";
import { $ } from "./dom.js";

/** Fill in the SMTP settings; resolves to the WebUIConfiguration (null if unavailable). */
export async function showSmtpSettings() {
  let config;
  try {
    config = await api.webUIConfig();
  } catch {
    return null; // the page still works; the welcome card just lacks the address
  }
  const smtp = config.SMTP || {};
  // A wildcard bind is reached by the name this page was loaded from.
  const host = !smtp.Host || ["0.0.0.0", "::", "[::]"].includes(smtp.Host) ? location.hostname : smtp.Host;
  const hostText = host.includes(":") ? `[${host}]` : host;
  $("#smtp-host").textContent = host;
  $("#smtp-port").textContent = String(smtp.Port ?? "");
  $("#smtp-tls").textContent = smtp.RequireTLS ? "STARTTLS (required)" : smtp.STARTTLS ? "STARTTLS (optional)" : "None";
  $("#smtp-auth").textContent = smtp.Auth
    ? "The configured user names and passwords"
    : "Any user name and password, or none";
  $("#smtp-example").textContent = [
    "printf 'Subject: Hello\\n\\nIt works.\\n' |",
    `  curl -sS smtp://${hostText}:${smtp.Port} \\`,
    "    --mail-from app@example.com --mail-rcpt you@example.com -T -",
  ].join("\n");
  if (config.Label) document.querySelector(".brand-name").textContent = `Mailtrap · ${config.Label}`;
  return config;
}
