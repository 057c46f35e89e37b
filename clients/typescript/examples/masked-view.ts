// Create a subject, then read it back through a masked view and print it.
//
//   CUSTOMER_VAULT_ADDR=127.0.0.1:50051 \
//   CUSTOMER_VAULT_TOKEN=<a service token> CUSTOMER_VAULT_READER_TOKEN=<a support agent's> \
//   npm run example
import { VaultClient, VaultError } from "../src";

async function main(): Promise<void> {
  const address = process.env.CUSTOMER_VAULT_ADDR ?? "127.0.0.1:50051";
  const writer = new VaultClient(address, { token: process.env.CUSTOMER_VAULT_TOKEN ?? "" });
  const reader = new VaultClient(address, {
    token: process.env.CUSTOMER_VAULT_READER_TOKEN ?? process.env.CUSTOMER_VAULT_TOKEN ?? "",
  });
  try {
    const created = await writer.createSubject({
      given_name: "Ada",
      family_name: "Lovelace",
      email: "ada.lovelace@example.com",
      phone: "+44 20 7946 0958",
      country: "gb",
    });
    const view = await reader.getSubject(created.subjectId, "support", "support");
    console.log(`${view.meta?.subjectId} v${view.meta?.version} (${view.view} view)`);
    for (const [name, field] of Object.entries(view.fields).sort()) {
      console.log(`  ${name.padEnd(14)} ${field.value}  [${field.disclosure}]`);
    }
  } catch (error) {
    if (error instanceof VaultError) {
      console.error(`${error.message} (reason ${error.reason || "-"}, request ${error.requestId || "-"})`);
      for (const v of error.violations) {
        console.error(`  ${v.field}: ${v.description}`);
      }
      process.exitCode = 1;
      return;
    }
    throw error;
  } finally {
    writer.close();
    reader.close();
  }
}

void main();
