// The template's IAM against infra/iam/cases.yaml, in @cloud-copilot/iam-simulate:
// every `allow` row must be allowed, every `deny` row denied (explicitly or
// implicitly) and every `deny_explicitly` row explicitly denied, by the
// role's policies and the bucket's policy.
// A row with a `gap` is printed with its result and why, and never counts.
//
// Usage: node simulate.mjs POLICIES.json  (from infra/iam/policies.py; the
// directory holding @cloud-copilot/iam-simulate in EBFLEET_IAM_SIMULATE_MODULES)

import { readFileSync } from 'node:fs';
import { simulate } from './simulation.mjs';

const data = JSON.parse(readFileSync(process.argv[2], 'utf8'));

let failed = 0;
let passed = 0;
const gaps = [];
for (const c of data.cases) {
  const what = `${c.principal} ${c.action} ${c.resource}`;
  const answer = await simulate(data, c.principal, c.action, c.resource, c.context);
  if (answer.error) {
    failed++;
    console.log(`FAIL ${what}: the simulator refused the request: ${answer.error}`);
    continue;
  }
  const ok = {
    allow: answer.result === 'Allowed',
    deny: answer.result !== 'Allowed',
    deny_explicitly: answer.result === 'ExplicitlyDenied',
  }[c.expect];
  if (c.gap) {
    gaps.push(`GAP  ${what}: ${answer.result}; must be denied: ${c.why}. ${c.gap}`);
  } else if (ok) {
    passed++;
  } else {
    failed++;
    console.log(`FAIL ${what}: ${answer.result}, must be ${c.expect.replace('_', ' ')}: ${c.why}`);
  }
}
for (const g of gaps) console.log(g);
const managed = Object.entries(data.principals).flatMap(([name, p]) => p.managed.map((arn) => `${name}: ${arn}`));
console.log(`not simulated (AWS managed policies): ${managed.join('; ')}`);
console.log(`${passed} rows as they must be, ${failed} not, ${gaps.length} known gaps`);
process.exit(failed ? 1 : 0);
