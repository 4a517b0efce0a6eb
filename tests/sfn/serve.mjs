// Step Functions on 127.0.0.1 for the end-to-end scenarios: the three
// state machines (statemachine/*.asl.json, as infra/template.yaml deploys
// them) in the local service (local-sfn.mjs), their Lambda tasks sent to
// `cargo lambda watch`, in real time scaled by --time-scale (every
// TimeoutSeconds, HeartbeatSeconds and Wait of the definitions times it,
// so a 300 s tick is 3 s at 0.01).
//
// node serve.mjs --invoke-port PORT [--port PORT] [--time-scale X]
//
// Prints `listening <port>` once it serves. Besides the Step Functions API
// it answers one call of its own for the tests, `Ebfleet.Executions`:
// every execution with its status and its history's event count.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { LocalStepFunctions, RealClock, ebfleetMachines } from './local-sfn.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : fallback;
};
const invokePort = Number(arg('--invoke-port'));
const port = Number(arg('--port', '0'));
const timeScale = Number(arg('--time-scale', '1'));

/** Lambda's Invoke API, as `cargo lambda watch` serves it. */
async function invoke(fn, payload) {
  const r = await fetch(`http://127.0.0.1:${invokePort}/2015-03-31/functions/${fn}/invocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  const text = await r.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = { errorMessage: text };
  }
  // A handler error: watch answers 500 with {errorType, errorMessage}.
  if (r.status !== 200 || body?.errorType) {
    throw Object.assign(new Error(body?.errorMessage ?? `HTTP ${r.status}`), { name: body?.errorType ?? 'Lambda.ServiceException' });
  }
  return body;
}

const machines = ebfleetMachines((f) => readFileSync(path.join(here, '../../statemachine', f), 'utf8'));
const svc = new LocalStepFunctions({
  machines,
  invoke,
  clock: new RealClock(timeScale),
  waitMs: 0,
  log: (m) => process.stderr.write(`sfn: ${m}\n`),
});
// The tests' own call: every execution, its status and history size.
const executions = () => ({
  executions: [...svc.executions.values()].map((x) => ({
    executionArn: x.arn,
    stateMachine: x.machine.name,
    name: x.name,
    status: x.status,
    events: x.events,
    input: x.input,
    output: x.output,
    error: x.error,
    cause: x.cause,
    startDate: x.startDate,
    stopDate: x.stopDate,
  })),
});
const listening = await svc.listen(port, { Executions: executions });
console.log(`listening ${listening}`);
