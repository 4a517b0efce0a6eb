// The bake state machine (statemachine/bake.asl.json) in a real ASL
// interpreter (aws-local-stepfunctions, through tests/sfn/local-sfn.mjs),
// the bake Lambda replaced by a model of its states; each scenario checks
// that every instance launched is terminated (Clean up, or Clean up after
// failure with the unrecorded image), that one bake's failure neither
// aborts nor skips the others, and that the execution fails when an image
// was not baked.
//
// Usage: node bake.mjs   (Node 22; EBFLEET_NODE_MODULES points at the
// node_modules holding aws-local-stepfunctions 3)

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import assert from 'node:assert/strict';
import { LocalStepFunctions, functionArn, statesError, stateMachineArn, substitute } from '../../tests/sfn/local-sfn.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const machines = {
  'ebfleet-bake': substitute(readFileSync(path.join(here, '..', 'bake.asl.json'), 'utf8'), {
    BakeFunctionArn: functionArn('bake'),
  }),
};
const X86 = { os: 'amzn-2023', arch: 'x86_64', kind: 'cpu' };
const ARM = { os: 'amzn-2023', arch: 'aarch64', kind: 'cpu' };
const key = (t) => `${t.os}/${t.arch}/${t.kind}`;

/**
 * One execution. `fail[action]` = set of target keys whose `action`
 * fails (ebfleet.Failed); `bakes`: what Due answers.
 */
async function run({ bakes, fail = {}, transientCleanUps = 0 }) {
  const world = { calls: [], launched: new Map(), cleaned: [], recorded: [] };
  let seq = 0;
  let transient = transientCleanUps;
  const failing = (action, t) => fail[action]?.has(key(t));
  const models = {
    due: () => ({ bakes, fresh: [] }),
    launch: (t) => {
      if (failing('launch', t)) throw statesError('ebfleet.Failed', `launch ${key(t)}`);
      const b = { target: t, instance_id: `i-${++seq}`, source_ami: 'ami-0fedcba9876543210', deadline: 0, image_id: null, ready: false, parameter: null };
      world.launched.set(b.instance_id, { polls: 0, imagePolls: 0 });
      return b;
    },
    bootstrapped: (b) => {
      if (failing('bootstrapped', b.target)) throw statesError('ebfleet.Failed', `bake instance ${b.instance_id} is gone`);
      const s = world.launched.get(b.instance_id);
      s.polls += 1;
      return { ...b, ready: s.polls >= 3 };
    },
    create_image: (b) => ({ ...b, image_id: `ami-00000000000000${b.instance_id.slice(2).padStart(3, '0')}`, ready: false }),
    image_ready: (b) => {
      const s = world.launched.get(b.instance_id);
      s.imagePolls += 1;
      return { ...b, ready: s.imagePolls >= 2 };
    },
    record: (b) => {
      if (failing('record', b.target)) throw statesError('ebfleet.Failed', `image ${b.image_id} is x86_64, the platform is aarch64`);
      const parameter = `/ebfleet/node-image/${key(b.target)}`;
      world.recorded.push(parameter);
      return { ...b, parameter };
    },
    clean_up: (b) => {
      if (transient > 0) {
        transient -= 1;
        throw statesError('ebfleet.Transient', 'RequestLimitExceeded');
      }
      world.cleaned.push({ instance: b.instance_id, image: b.parameter ? null : b.image_id });
      return b;
    },
    summary: (results) => {
      const failed = results.filter((r) => !r.parameter);
      if (failed.length) throw statesError('ebfleet.Failed', `not baked: ${failed.map((r) => r.cause).join('; ')}`);
      return { recorded: results.map((r) => r.parameter) };
    },
  };
  const invoke = async (fn, payload) => {
    assert.equal(fn, 'bake');
    const [action] = Object.keys(payload);
    world.calls.push(action);
    return models[action](JSON.parse(JSON.stringify(payload[action])));
  };
  const svc = new LocalStepFunctions({ machines, invoke, randomTokens: false, log: process.env.BAKE_DEBUG ? console.log : () => {} });
  const { executionArn } = svc.start(stateMachineArn('ebfleet-bake'), 'bake-1', {});
  const d = await svc.wait(executionArn);
  return { d, world };
}

function everyInstanceTerminated(world) {
  const cleaned = new Set(world.cleaned.map((c) => c.instance));
  for (const id of world.launched.keys()) assert.ok(cleaned.has(id), `instance ${id} was never terminated`);
}

const scenarios = {
  async 'both images baked, recorded, their instances terminated'() {
    const { d, world } = await run({ bakes: [X86, ARM] });
    assert.equal(d.status, 'SUCCEEDED', d.cause);
    assert.deepEqual(world.recorded.sort(), ['/ebfleet/node-image/amzn-2023/aarch64/cpu', '/ebfleet/node-image/amzn-2023/x86_64/cpu']);
    everyInstanceTerminated(world);
    assert.ok(world.cleaned.every((c) => c.image === null), 'a recorded image is kept');
    assert.equal(world.calls.filter((c) => c === 'bootstrapped').length, 6, 'polled until the instance stopped');
  },
  async 'a failed bootstrap is terminated, the other image still baked, the execution fails'() {
    const { d, world } = await run({ bakes: [X86, ARM], fail: { bootstrapped: new Set([key(X86)]) } });
    assert.equal(d.status, 'FAILED');
    assert.equal(d.error, 'ebfleet.BakeFailed');
    assert.deepEqual(world.recorded, ['/ebfleet/node-image/amzn-2023/aarch64/cpu']);
    everyInstanceTerminated(world);
  },
  async 'an image refused at Record is deregistered with its instance'() {
    const { d, world } = await run({ bakes: [ARM], fail: { record: new Set([key(ARM)]) } });
    assert.equal(d.status, 'FAILED');
    assert.deepEqual(world.recorded, []);
    everyInstanceTerminated(world);
    assert.ok(world.cleaned[0].image?.startsWith('ami-'), 'the unrecorded image goes with it');
  },
  async 'a failed launch leaves nothing to clean up and fails the execution'() {
    const { d, world } = await run({ bakes: [X86], fail: { launch: new Set([key(X86)]) } });
    assert.equal(d.status, 'FAILED');
    assert.equal(world.launched.size, 0);
    assert.deepEqual(world.cleaned, []);
  },
  async 'a throttled clean-up is retried'() {
    const { d, world } = await run({ bakes: [X86], transientCleanUps: 2 });
    assert.equal(d.status, 'SUCCEEDED', d.cause);
    everyInstanceTerminated(world);
  },
  async 'nothing due: nothing launched'() {
    const { d, world } = await run({ bakes: [] });
    assert.equal(d.status, 'SUCCEEDED', d.cause);
    assert.deepEqual(world.calls, ['due', 'summary']);
  },
};

let failed = 0;
for (const [name, f] of Object.entries(scenarios)) {
  try {
    await f();
    console.log(`ok - ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL - ${name}\n    ${String(e.stack ?? e).split('\n').slice(0, 6).join('\n    ')}`);
  }
}
console.log(`bake state machine: ${Object.keys(scenarios).length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
