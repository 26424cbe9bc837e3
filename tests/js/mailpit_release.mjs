// Releases a message with Mailpit's npm client (mailpit-api) and prints what it got, as JSON.
// Usage: node mailpit_release.mjs BASE_URL ID ALLOWED REFUSED
// Driven by tests/test_relay_rules.py.
import { MailpitClient } from "mailpit-api";

const [baseURL, id, allowed, refused] = process.argv.slice(2);
const mailpit = new MailpitClient(baseURL);
const results = {};

results.webui = await mailpit.getWebUIConfiguration?.() ?? null;
results.released = await mailpit.releaseMessage(id, { To: [allowed] });
try {
  await mailpit.releaseMessage(id, { To: [refused] });
  results.refused = "no error";
} catch (error) {
  results.refused = error.message;
}

console.log(JSON.stringify(results));
