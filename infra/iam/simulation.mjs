// One request against one role of the template, in @cloud-copilot/iam-simulate:
// the role's policies (infra/iam/policies.py's output) and the bucket's
// policy, over TLS. Shared by simulate.mjs (the table of cases) and
// decide.mjs (the end-to-end tests' build nodes, call by call).

import { createRequire } from 'node:module';
import path from 'node:path';

const modules = process.env.EBFLEET_IAM_SIMULATE_MODULES;
const require = createRequire(path.join(modules, 'noop.js'));
const { runSimulation } = require('@cloud-copilot/iam-simulate');

/** The simulator's answer for `role` calling `action` on `resource`:
 * `{ result }` (Allowed, ImplicitlyDenied, ExplicitlyDenied) or `{ error }`. */
export async function simulate(data, role, action, resource, context = {}) {
  const principal = data.principals[role];
  if (!principal) return { error: `no role ${role} in the template` };
  const resourcePolicy = Object.entries(data.resource_policies).find(
    ([arn]) => resource === arn || resource.startsWith(`${arn}/`),
  )?.[1];
  const response = await runSimulation(
    {
      identityPolicies: principal.policies.map((policy, i) => ({ name: `${role}-${i}`, policy })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy,
      request: {
        principal: principal.arn,
        action,
        resource: { resource, accountId: data.account },
        // Every call goes over TLS (the bucket refuses anything else).
        contextVariables: { 'aws:SecureTransport': 'true', ...context },
      },
    },
    {},
  );
  if (response.resultType === 'error') return { error: JSON.stringify(response.errors).slice(0, 400) };
  return { result: response.overallResult };
}
