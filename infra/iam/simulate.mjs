// The template's IAM against infra/iam/cases.yaml, in @cloud-copilot/iam-simulate:
// every `allow` row must be allowed, every `deny` row denied (explicitly or
// implicitly) and every `deny_explicitly` row explicitly denied, by the
// role's policies and the bucket's policy.
// A row with a `gap` is printed with its result and why, and never counts.
//
// Usage: node simulate.mjs POLICIES.json  (from infra/iam/policies.py; the
// directory holding @cloud-copilot/iam-simulate in EBFLEET_IAM_SIMULATE_MODULES)

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const modules = process.env.EBFLEET_IAM_SIMULATE_MODULES;
const require = createRequire(path.join(modules, 'noop.js'));
const { runSimulation } = require('@cloud-copilot/iam-simulate');

const data = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const bucketPolicyOf = (resource) =>
  Object.entries(data.resource_policies).find(([arn]) => resource === arn || resource.startsWith(`${arn}/`))?.[1];

let failed = 0;
let passed = 0;
const gaps = [];
for (const c of data.cases) {
  const principal = data.principals[c.principal];
  if (!principal) {
    failed++;
    console.log(`FAIL ${c.principal}: no such role in the template`);
    continue;
  }
  const simulation = {
    identityPolicies: principal.policies.map((policy, i) => ({ name: `${c.principal}-${i}`, policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: bucketPolicyOf(c.resource),
    request: {
      principal: principal.arn,
      action: c.action,
      resource: { resource: c.resource, accountId: data.account },
      // Every call goes over TLS (the bucket refuses anything else).
      contextVariables: { 'aws:SecureTransport': 'true', ...c.context },
    },
  };
  const response = await runSimulation(simulation, {});
  const what = `${c.principal} ${c.action} ${c.resource}`;
  if (response.resultType === 'error') {
    failed++;
    console.log(`FAIL ${what}: the simulator refused the request: ${JSON.stringify(response.errors).slice(0, 400)}`);
    continue;
  }
  const ok = {
    allow: response.overallResult === 'Allowed',
    deny: response.overallResult !== 'Allowed',
    deny_explicitly: response.overallResult === 'ExplicitlyDenied',
  }[c.expect];
  if (c.gap) {
    gaps.push(`GAP  ${what}: ${response.overallResult}; must be denied: ${c.why}. ${c.gap}`);
  } else if (ok) {
    passed++;
  } else {
    failed++;
    console.log(`FAIL ${what}: ${response.overallResult}, must be ${c.expect.replace('_', ' ')}: ${c.why}`);
  }
}
for (const g of gaps) console.log(g);
const managed = Object.entries(data.principals).flatMap(([name, p]) => p.managed.map((arn) => `${name}: ${arn}`));
console.log(`not simulated (AWS managed policies): ${managed.join('; ')}`);
console.log(`${passed} rows as they must be, ${failed} not, ${gaps.length} known gaps`);
process.exit(failed ? 1 : 0);
