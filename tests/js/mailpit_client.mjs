// Runs Mailpit's npm client (mailpit-api) against a server and prints what it got, as JSON.
// Usage: node mailpit_client.mjs BASE_URL
// Driven by tests/test_api_npm_client.py, which has put three messages in the mailbox:
// "Welcome" (with an attachment), "Invoice" and "Newsletter".
import { MailpitClient } from "mailpit-api";

const [baseURL] = process.argv.slice(2);
const mailpit = new MailpitClient(baseURL);
const results = {};

results.info = await mailpit.getInfo();
results.list = await mailpit.listMessages();
results.page = await mailpit.listMessages(1, 1);
results.search = await mailpit.searchMessages({ query: "subject:Invoice" });
const invoiceID = results.search.messages[0].ID;
results.get = await mailpit.getMessageSummary(invoiceID);
results.latest = await mailpit.getMessageSummary();
results.raw = await mailpit.getMessageSource(invoiceID);
results.headers = await mailpit.getMessageHeaders(invoiceID);

const welcome = await mailpit.getMessageSummary(
  (await mailpit.searchMessages({ query: "subject:Welcome" })).messages[0].ID,
);
const blob = await mailpit.getMessageAttachment(welcome.ID, welcome.Attachments[0].PartID);
results.attachment = {
  type: blob.type,
  base64: Buffer.from(await blob.arrayBuffer()).toString("base64"),
};
results.text = await mailpit.renderMessageText(welcome.ID);

results.setRead = await mailpit.setReadStatus({ Search: "subject:Newsletter", Read: true });
results.setTags = await mailpit.setTags({ IDs: [invoiceID], Tags: ["billing"] });
results.tags = await mailpit.getTags();
results.sent = await mailpit.sendMessage({
  From: { Email: "robot@example.test", Name: "Robot" },
  To: [{ Email: "someone@example.test" }],
  Subject: "Sent through the API",
  Text: "Hello from Node",
});
results.waited = await mailpit.waitForMessage(
  { query: "subject:\"Sent through\"" },
  { timeout: 5000, interval: 100 },
);

results.deleteOne = await mailpit.deleteMessages({ IDs: [invoiceID] });
results.afterDeleteOne = await mailpit.listMessages();
results.deleteBySearch = await mailpit.deleteMessagesBySearch({ query: "subject:Newsletter" });
results.afterDeleteBySearch = await mailpit.listMessages();
results.deleteAll = await mailpit.deleteMessages();
results.afterDeleteAll = await mailpit.listMessages();

try {
  await mailpit.getMessageSummary("no-such-id");
  results.missing = "no error";
} catch (error) {
  results.missing = error.message;
}

console.log(JSON.stringify(results));
