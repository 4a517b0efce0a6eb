// The template's IAM as a gate: one role's answer per request, for the
// end-to-end tests' build nodes (tests/e2e/iam_gate.py), which enforce it
// on every S3 and DynamoDB call a node makes (moto enforces no IAM).
//
// Usage: node decide.mjs POLICIES.json ROLE  (from infra/iam/policies.py;
// @cloud-copilot/iam-simulate in EBFLEET_IAM_SIMULATE_MODULES). Reads one
// JSON request a line ({"action", "resource", "context"}), answers one JSON
// line ({"result"} or {"error"}) each, in order.

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { simulate } from './simulation.mjs';

const data = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const role = process.argv[3];
for await (const line of createInterface({ input: process.stdin })) {
  let answer;
  try {
    const r = JSON.parse(line);
    answer = await simulate(data, role, r.action, r.resource, r.context ?? {});
  } catch (e) {
    answer = { error: String(e) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
