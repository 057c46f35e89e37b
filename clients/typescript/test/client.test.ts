// Against a real vault started by tests/integration/test_typescript_client.py, which
// passes its address and tokens in the environment (`make clients-test`).
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import { after, test } from "node:test";
import { VaultClient, VaultError, retryableMethods } from "../src";

function env(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run through tests/integration/test_typescript_client.py`);
  return value;
}

const address = env("CUSTOMER_VAULT_ADDR");
const service = new VaultClient(address, { token: env("CUSTOMER_VAULT_TOKEN") });
const agent = new VaultClient(address, { token: env("CUSTOMER_VAULT_READER_TOKEN") });
after(() => {
  service.close();
  agent.close();
});

const ADA = {
  given_name: "Ada",
  family_name: "Lovelace",
  email: "ada.lovelace@example.com",
  phone: "+44 20 7946 0958",
  country: "gb",
};

test("a subject created is read back through a masked view", async () => {
  const created = await service.createSubject(ADA);
  assert.match(created.subjectId, /^sub_/);
  assert.equal(created.version, "1");
  const view = await agent.getSubject(created.subjectId, "support", "support");
  assert.equal(view.view, "support");
  assert.equal(view.meta?.subjectId, created.subjectId);
  assert.notEqual(view.fields.email.value, ADA.email);
  assert.equal(view.fields.email.disclosure, "DISCLOSURE_MASKED");
});

test("a bad request is a VaultError with its field violations and request id", async () => {
  await assert.rejects(service.createSubject({ ...ADA, shoe_size: "44" }), (error: unknown) => {
    assert.ok(error instanceof VaultError);
    assert.equal(error.code, "INVALID_ARGUMENT");
    assert.ok(error.violations.some((v) => v.field.startsWith("fields")), error.message);
    assert.ok(error.requestId);
    return true;
  });
});

test("a refusal by the policy carries the ErrorInfo reason", async () => {
  const created = await service.createSubject(ADA);
  await assert.rejects(service.getSubject(created.subjectId, "support", "support"), (error: unknown) => {
    assert.ok(error instanceof VaultError);
    assert.equal(error.code, "PERMISSION_DENIED");
    assert.equal(error.reason, "POLICY_DENIED");
    return true;
  });
});

test("any method of any service through call()", async () => {
  const created = await service.createSubject(ADA);
  const consent = await service.call<{ subjectId: string }>("consent", "GetConsent", {
    subjectId: created.subjectId,
  });
  assert.equal(consent.subjectId, created.subjectId);
});

test("the retry policy names reads, never a create without request id", () => {
  const names = retryableMethods().map((m) => `${m.service}/${m.method}`);
  assert.ok(names.includes("customervault.v1.VaultService/GetSubject"));
  assert.ok(names.includes("customervault.v1.VaultService/FindSubjects"));
  assert.ok(!names.includes("customervault.v1.CustomerAccessService/RedeemCustomerLink"));
});

test("a call has a deadline", async () => {
  // A listener that accepts and never answers: the call ends, it does not hang.
  const sockets: net.Socket[] = [];
  const listener = net.createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address() as net.AddressInfo;
  const silent = new VaultClient(`127.0.0.1:${port}`, { timeoutMs: 300, retry: null });
  try {
    await assert.rejects(silent.createSubject(ADA), (error: unknown) => {
      assert.ok(error instanceof VaultError);
      assert.equal(error.code, "DEADLINE_EXCEEDED");
      return true;
    });
  } finally {
    silent.close();
    sockets.forEach((socket) => socket.destroy());
    listener.close();
  }
});

test("the example creates a subject and prints its masked view", () => {
  const example = path.resolve(__dirname, "..", "examples", "masked-view.js");
  const printed = execFileSync(process.execPath, [example], { encoding: "utf-8" });
  assert.match(printed, /^sub_\S+ v1 \(support view\)/);
  assert.match(printed, /email .*\[DISCLOSURE_MASKED\]/);
});
