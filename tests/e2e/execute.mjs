// One execution of statemachine/pipeline.asl.json in aws-local-stepfunctions
// 3 (a real ASL interpreter), every Lambda task sent to the real function
// under `cargo lambda watch` (POST /2015-03-31/functions/NAME/invocations).
//
// Usage: node execute.mjs REQUEST.json   (Node 22; EBFLEET_NODE_MODULES
// points at the node_modules holding aws-local-stepfunctions 3)
//
// REQUEST: {definition, name, input, invoke_port, substitutions, wait_ms}.
// `definition` is the ASL file; `${XFunctionArn}` becomes the ARN of
// function `x` (the directory name under functions/), other `${Name}`s come
// from `substitutions`. Every Wait state waits `wait_ms` instead of its
// seconds, every Retry interval is 100 ms.
//
// Prints one JSON line: {status, output?, error?, cause?, tasks: [[state,
// function, ok]]}. Exits 0 whatever the execution's status: the caller
// asserts on it.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { allStates, functionArn, substitute } from '../../statemachine/test/definition.mjs';

const modules = process.env.EBFLEET_NODE_MODULES;
if (!modules) throw new Error('EBFLEET_NODE_MODULES is not set');
const { StateMachine } = createRequire(path.join(modules, 'x.js'))('aws-local-stepfunctions');

const req = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const ARN = /^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:([a-z]+)$/;

/** The definition as SAM deploys it: `${XFunctionArn}` is function `x`. */
function definition() {
  const text = readFileSync(req.definition, 'utf8');
  const subs = { ...req.substitutions };
  for (const [, name] of text.matchAll(/\$\{(\w+)FunctionArn\}/g)) subs[`${name}FunctionArn`] = functionArn(name.toLowerCase());
  return substitute(text, subs);
}

/** Lambda's Invoke API, as `cargo lambda watch` serves it. */
async function invoke(fn, payload) {
  const url = `http://127.0.0.1:${req.invoke_port}/2015-03-31/functions/${fn}/invocations`;
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(payload), headers: { 'content-type': 'application/json' } });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = { errorMessage: text }; }
  // A handler error: watch answers 500 with {errorType, errorMessage}.
  // Step Functions names the error by errorType, which Retry/Catch match.
  if (res.status !== 200 || (body && body.errorType)) {
    const e = new Error(body?.errorMessage ?? `HTTP ${res.status}`);
    e.name = body?.errorType ?? 'Lambda.ServiceException';
    throw e;
  }
  return body;
}

const def = definition();
const states = allStates(def);
const tasks = [];
const handlers = {};
const zero = {};
const waits = {};
for (const [name, s] of Object.entries(states)) {
  if (s.Type === 'Wait') waits[name] = req.wait_ms;
  if (Array.isArray(s.Retry)) zero[name] = 100;
  if (s.Type !== 'Task') continue;
  const fn = s.Resource.match(ARN)?.[1];
  if (!fn) throw new Error(`state ${name}: resource ${s.Resource} is not a Lambda function`);
  handlers[name] = async (input) => {
    try {
      const out = await invoke(fn, input);
      tasks.push([name, fn, true]);
      return out;
    } catch (e) {
      tasks.push([name, fn, false, e.name, String(e.message).slice(0, 300)]);
      throw e;
    }
  };
}

const sm = new StateMachine(def, { validationOptions: { checkArn: true, checkPaths: true } });
const execution = sm.run(req.input, {
  overrides: { taskResourceLocalHandlers: handlers, waitTimeOverrides: waits, retryIntervalOverrides: zero },
  context: {
    Execution: {
      Id: `arn:aws:states:us-east-1:123456789012:execution:ebfleet:${req.name}`,
      Name: req.name,
      Input: req.input,
      StartTime: new Date().toISOString(),
    },
  },
});
let result;
try {
  result = { status: 'SUCCEEDED', output: await execution.result };
} catch (e) {
  result = { status: 'FAILED', error: e.cause?.name ?? e.name, cause: String(e.cause?.message ?? e.message) };
}
process.stdout.write(JSON.stringify({ ...result, tasks }) + '\n');
