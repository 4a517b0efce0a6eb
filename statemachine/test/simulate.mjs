// Runs statemachine/pipeline.asl.json in aws-local-stepfunctions (a real
// ASL interpreter) with every Lambda replaced by a small model of it, and
// checks the workflow, scenario by scenario: batches in order, each leased
// before its steps, every step in order, a lost node replaced and its batch
// retried, failures caught, and every platform that started a node released
// on every path.
//
// The models answer with the shapes in lambda-outputs.json (the Rust test
// crates/ebfleet-control/tests/template.rs checks those against the handlers'
// output types). The first input each Task state sends (smallest JSON first)
// is compared with task-inputs.json, which the same Rust test reads into the
// handlers' input types: a Parameters change that breaks a handler's
// contract fails one of the two.
//
// Usage: node simulate.mjs [--update]   (Node 22; EBFLEET_NODE_MODULES
// points at the node_modules holding aws-local-stepfunctions 3)

import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import assert from 'node:assert/strict';
import { allStates, functionArn, substitute } from './definition.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = process.env.EBFLEET_NODE_MODULES;
if (!modules) throw new Error('EBFLEET_NODE_MODULES is not set');
const { StateMachine } = createRequire(path.join(modules, 'x.js'))('aws-local-stepfunctions');

const UPDATE = process.argv.includes('--update');
const TEMPLATE = readFileSync(path.join(here, '..', 'pipeline.asl.json'), 'utf8');
const OUT = JSON.parse(readFileSync(path.join(here, 'lambda-outputs.json'), 'utf8'));
const INPUTS_FILE = path.join(here, 'task-inputs.json');
const EXECUTION = 'run-1';
const FUNCTIONS = ['Plan', 'Capacity', 'Managed', 'Dispatch', 'Status', 'Record', 'Release'];
const copy = (v) => JSON.parse(JSON.stringify(v));
const hex = (s, n) => createHash('sha256').update(s).digest('hex').slice(0, n);

/** The definition as SAM deploys it, the stack's settings in `settings`. */
function definition(settings) {
  const subs = {
    MapConcurrency: settings.mapConcurrency ?? 2,
    MaxNodeAttempts: settings.nodeAttempts ?? 3,
    MaxInstancesPerPlatform: settings.instances ?? 6,
  };
  for (const f of FUNCTIONS) subs[`${f}FunctionArn`] = functionArn(`ebfleet-${f.toLowerCase()}`);
  return substitute(TEMPLATE, subs);
}

function functionOf(resource) {
  const f = FUNCTIONS.find((f) => resource.endsWith(`:ebfleet-${f.toLowerCase()}`));
  if (!f) throw new Error(`unknown resource ${resource}`);
  return f;
}

/**
 * One execution against a model of the Lambdas and of AWS.
 * `platforms`: [[name, batches]]; `hooks` replace a function's model,
 * `stateHooks` one Task state's (both get (input, call, world, models)).
 */
async function run({ platforms, hooks = {}, stateHooks = {}, settings = {}, input = { mode: 'full' }, mutate }) {
  const def = definition(settings);
  if (mutate) mutate(def);
  const states = allStates(def);
  const calls = [];
  const world = { instanceOf: {}, platformOf: {}, nodes: {}, commands: {}, polls: {} };

  const models = {
    Plan(i) {
      const out = copy(OUT.plan);
      out.execution = i.execution;
      out.plan_key = `plans/${i.execution}/plan.json`;
      const tmpl = OUT.plan.platforms[0];
      out.platforms = platforms.map(([name, batches]) => ({
        ...copy(tmpl), platform: name, batches, to_build: batches * 2,
        batch_prefix: `plans/${i.execution}/${name}/`,
      }));
      out.nothing_to_do = platforms.every(([, b]) => b === 0);
      return out;
    },
    Capacity(i) {
      const n = (world.nodes[i.platform] = (world.nodes[i.platform] ?? 0) + 1);
      const id = `i-${hex(`${i.platform}#${n}`, 17)}`;
      world.platformOf[id] = i.platform;
      const out = copy(OUT.capacity);
      out.instance_ids = [id];
      return out;
    },
    Managed() { return copy(OUT.managed); },
    Dispatch(i) {
      const key = `${i.instance_id}/${i.batch_key}/${i.step}`;
      const n = (world.commands[key] = (world.commands[key] ?? 0) + 1);
      const h = hex(`${key}#${n}`, 32);
      const id = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
      world.instanceOf[id] = { instance: i.instance_id, step: i.step, batch_key: i.batch_key };
      return { ...copy(OUT.dispatch), command_id: id, instance_id: i.instance_id, step: i.step };
    },
    Status(i) {
      const n = (world.polls[i.command_id] = (world.polls[i.command_id] ?? 0) + 1);
      const { step } = world.instanceOf[i.command_id];
      // Builds take three polls (the backoff runs), other steps two.
      const polls = step === 'build' ? 3 : 2;
      return copy(n < polls ? OUT.status.in_progress : OUT.status.success);
    },
    // One function, three inputs: a batch's leases to take (the Lease
    // state), a lost batch's leases to give up, a manifest to record.
    Record(i) {
      if (i.lease) {
        const { execution, platform, batch } = i.lease;
        return { ...copy(OUT.lease), leases_key: `plans/${execution}/${platform}/${batch}.leases.json` };
      }
      if (i.release_leases) return copy(OUT.release_leases);
      return { ...copy(OUT.record), manifest_key: `${i.platform}/manifests/${i.execution}/${i.batch}.json` };
    },
    Release(i) {
      return { ...copy(OUT.release), terminated: i.instance_ids, launch_templates_deleted: [] };
    },
  };

  // The platform a call is about, from its input or its instance.
  const platformOf = (i) =>
    i.platform ?? i.lease?.platform ?? i.release_leases?.platform ?? world.platformOf[i.instance_id] ?? world.platformOf[(i.instance_ids ?? [])[0]]
      ?? world.platformOf[world.instanceOf[i.command_id]?.instance];

  const handlers = {};
  for (const [name, s] of Object.entries(states)) {
    if (s.Type !== 'Task') continue;
    const fn = functionOf(s.Resource);
    handlers[name] = async (input) => {
      const call = { fn, state: name, input: copy(input), platform: platformOf(input) };
      calls.push(call);
      try {
        const hook = stateHooks[name] ?? hooks[fn];
        const out = (hook && hook(input, call, world, models)) ?? models[fn](input, call);
        call.output = copy(out);
        return out;
      } catch (e) {
        call.error = e.name;
        throw e;
      }
    };
  }
  const zero = (pred) => Object.fromEntries(Object.entries(states).filter(([, s]) => pred(s)).map(([n]) => [n, 0]));
  const sm = new StateMachine(def, { validationOptions: { checkArn: true, checkPaths: true } });
  const execution = sm.run(input, {
    overrides: {
      taskResourceLocalHandlers: handlers,
      waitTimeOverrides: zero((s) => s.Type === 'Wait'),
      retryIntervalOverrides: zero((s) => Array.isArray(s.Retry)),
    },
    context: { Execution: { Name: EXECUTION, Input: input } },
  });
  let output, error;
  try {
    output = await execution.result;
  } catch (e) {
    error = e.cause?.name ?? e.name;
  }
  return { output, error, calls, world, states };
}

// --------------------------------------------------------------- invariants

const A = 'amzn-2023_graviton-3';
const B = 'amzn-2023_epyc-gen-4';
const C = 'amzn-2023_xeon-gen-4_h100';

const of = (calls, platform, ...fns) => calls.filter((c) => c.platform === platform && (!fns.length || fns.includes(c.fn)));
const at = (calls, platform, ...states) => calls.filter((c) => c.platform === platform && states.includes(c.state));
const LOST_LEASES = "Release lost batch's leases";
const batchOf = (key) => Number(key.match(/\/(\d+)\.json$/)[1]);
const STEP_ORDER = ['sync', 'build', 'tar', 'upload'];

/** What must hold after every execution, whatever went wrong. */
function invariants(r, platforms) {
  for (const [p] of platforms) {
    const mine = of(r.calls, p);
    const started = mine.filter((c) => c.fn === 'Capacity' && c.output);
    if (!mine.some((c) => c.fn === 'Capacity')) continue;
    // The platform's last call is its Release, naming the last node.
    const last = mine[mine.length - 1];
    assert.equal(last.state, 'Release', `${p}: the last call is ${last.state}, not Release`);
    if (started.length) {
      assert.deepEqual(last.input.instance_ids, started[started.length - 1].output.instance_ids, `${p}: Release names the last node`);
    }
    // Nothing is sent to a node after it was released.
    const released = new Set();
    for (const c of mine) {
      if (c.fn === 'Release') (c.input.instance_ids ?? []).forEach((id) => released.add(id));
      if (c.fn === 'Dispatch') assert.ok(!released.has(c.input.instance_id), `${p}: ${c.state} sent to released ${c.input.instance_id}`);
    }
    // Every Sync of a batch on a node comes right after that batch's Lease
    // (failed sends of the same Sync aside).
    mine.forEach((c, n) => {
      if (c.state !== 'Sync' || !c.output) return;
      let k = n - 1;
      while (k >= 0 && mine[k].state === 'Sync' && mine[k].error) k--;
      const lease = mine[k];
      const batch = batchOf(c.input.batch_key);
      assert.ok(lease && lease.state === 'Lease' && lease.output && lease.output.waiting === 0,
        `${p}: Sync of batch ${batch} on ${c.input.instance_id} after ${lease?.state}, not a Lease with nothing to wait for`);
      const { waits_left: left, ...ref } = lease.input.lease;
      assert.deepEqual(ref, { execution: EXECUTION, platform: p, batch }, `${p}: Lease before Sync of batch ${batch}`);
      assert.ok(Number.isInteger(left) && left >= 0, `${p}: Lease sends waits_left ${left}`);
    });
    // Batches never go back; within a batch (on one node) the steps run in order.
    let prev = { batch: -1, step: -1, instance: null };
    for (const c of mine.filter((c) => c.fn === 'Dispatch' && c.output)) {
      const batch = batchOf(c.input.batch_key);
      const step = STEP_ORDER.indexOf(c.input.step);
      assert.equal(c.state.toLowerCase(), c.input.step, `${p}: state ${c.state} sends step ${c.input.step}`);
      assert.ok(batch >= prev.batch, `${p}: batch ${batch} after ${prev.batch}`);
      if (batch === prev.batch && c.input.instance_id === prev.instance) {
        assert.ok(step === prev.step + 1, `${p}: batch ${batch}: ${c.input.step} after step ${prev.step}`);
      } else {
        assert.equal(c.input.step, 'sync', `${p}: batch ${batch} on ${c.input.instance_id} starts with ${c.input.step}`);
      }
      prev = { batch, step, instance: c.input.instance_id };
    }
  }
  const size = Buffer.byteLength(JSON.stringify(r.output ?? {}));
  assert.ok(size < 256 * 1024, `output of ${size} bytes`);
}

const summaryOf = (r, p) => r.output.platforms.find((s) => s.platform === p);

// ---------------------------------------------------------------- scenarios

const scenarios = [];
const scenario = (name, f) => scenarios.push([name, f]);

scenario('happy path: batches in order, one node per platform, all released', async () => {
  const platforms = [[A, 3], [B, 2], [C, 0]];
  const r = await run({ platforms });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  for (const [p, n] of platforms.slice(0, 2)) {
    const dispatched = of(r.calls, p, 'Dispatch').map((c) => [batchOf(c.input.batch_key), c.input.step]);
    const want = [];
    for (let b = 0; b < n; b++) for (const s of STEP_ORDER) want.push([b, s]);
    assert.deepEqual(dispatched, want, p);
    assert.deepEqual(at(r.calls, p, 'Record').map((c) => c.input.batch), [...Array(n).keys()], p);
    assert.deepEqual(at(r.calls, p, 'Lease').map((c) => c.input.lease.batch), [...Array(n).keys()], p);
    assert.equal(at(r.calls, p, LOST_LEASES).length, 0, p);
    assert.equal(of(r.calls, p, 'Capacity').length, 1, p);
    const keys = of(r.calls, p, 'Dispatch').map((c) => c.input.batch_key);
    assert.ok(keys.every((k) => k === `plans/${EXECUTION}/${p}/${batchOf(k)}.json`), p);
    const s = summaryOf(r, p);
    assert.deepEqual(
      [s.batches, s.batches_done, s.batches_failed, s.built, s.failed, s.skipped, s.nodes_started, s.nodes_lost, s.release],
      [n, n, 0, 2 * n, n, n, 1, 0, 'released'], p);
    assert.equal(s.instance_type, OUT.capacity.instance_type);
  }
  assert.equal(of(r.calls, C).length, 0, 'an up-to-date platform calls nothing');
  assert.equal(summaryOf(r, C).release, 'none');
  assert.equal(r.output.unreleased, false);
  assert.equal(r.output.execution, EXECUTION);
  // The build step was polled with backoff: 60 s, then 120 s.
  const build = r.calls.filter((c) => c.state === 'Build status');
  assert.ok(build.length >= 3);
  return r;
});

scenario('the execution name wins over the input, other input fields reach Plan', async () => {
  const input = { execution: 'someone-else', mode: 'changed', changed_keys: ['easyconfigs/z/zlib/zlib-1.3.1.eb'], platforms: [A] };
  const r = await run({ platforms: [[A, 1]], input });
  assert.equal(r.error, undefined);
  const plan = r.calls.find((c) => c.fn === 'Plan').input;
  assert.equal(plan.execution, EXECUTION);
  assert.equal(plan.mode, 'changed');
  assert.deepEqual(plan.changed_keys, input.changed_keys);
  assert.deepEqual(plan.platforms, [A]);
  return r;
});

scenario('nothing to do: no instance is started', async () => {
  const r = await run({ platforms: [[A, 0], [B, 0]] });
  assert.equal(r.error, undefined);
  assert.deepEqual(r.calls.map((c) => c.fn), ['Plan']);
  assert.equal(r.output.nothing_to_do, true);
  return r;
});

scenario('plan fails: the execution fails, nothing started', async () => {
  const r = await run({ platforms: [[A, 1]], hooks: { Plan() { throw new Error('boom'); } } });
  assert.equal(r.error, 'ebfleet.PlanFailed');
  assert.ok(r.calls.every((c) => c.fn === 'Plan'));
  assert.equal(r.calls.length, 3, 'Plan is retried twice');
});

scenario('transient Lambda errors are retried, not failures', async () => {
  let n = 0;
  const platforms = [[A, 1]];
  const r = await run({
    platforms,
    hooks: {
      Capacity(i, call, world, models) {
        if (n++ < 2) { const e = new Error('rate exceeded'); e.name = 'Lambda.TooManyRequestsException'; throw e; }
        return models.Capacity(i);
      },
    },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  assert.equal(summaryOf(r, A).batches_done, 1);
  assert.equal(summaryOf(r, A).nodes_started, 1);
  return r;
});

scenario('node lost mid-build: released, new capacity, the batch again from Sync', async () => {
  const platforms = [[A, 3], [B, 2]];
  let lost = false;
  const r = await run({
    platforms,
    hooks: {
      Status(i, call, world, models) {
        const cmd = world.instanceOf[i.command_id];
        if (!lost && call.platform === A && cmd.step === 'build' && cmd.batch_key.endsWith('/1.json')) {
          lost = true;
          return copy(OUT.status.node_lost);
        }
        return models.Status(i);
      },
    },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  const a = of(r.calls, A);
  const first = a.find((c) => c.fn === 'Capacity').output.instance_ids;
  const lostRelease = a.find((c) => c.state === 'Release lost node');
  assert.deepEqual(lostRelease.input.instance_ids, first);
  const dispatched = of(r.calls, A, 'Dispatch').map((c) => `${batchOf(c.input.batch_key)}:${c.input.step}`);
  assert.deepEqual(dispatched, ['0:sync', '0:build', '0:tar', '0:upload', '1:sync', '1:build',
    '1:sync', '1:build', '1:tar', '1:upload', '2:sync', '2:build', '2:tar', '2:upload']);
  assert.deepEqual(at(r.calls, A, 'Record').map((c) => c.input.batch), [0, 1, 2], 'each batch recorded once');
  assert.deepEqual(at(r.calls, A, 'Lease').map((c) => c.input.lease.batch), [0, 1, 1, 2], 'leased again on the new node');
  assert.equal(at(r.calls, A, LOST_LEASES).length, 0, 'a batch retried keeps its leases');
  const s = summaryOf(r, A);
  assert.deepEqual([s.nodes_started, s.nodes_lost, s.batches_done, s.batches_failed], [2, 1, 3, 0]);
  assert.equal(summaryOf(r, B).batches_done, 2, 'the other platform goes on');
  return r;
});

scenario('a dispatch to a vanished node: Check node says gone, new capacity', async () => {
  const platforms = [[A, 2]];
  let gone = null;
  const r = await run({
    platforms,
    hooks: {
      Dispatch(i, call, world, models) {
        if (gone === null && i.step === 'tar') gone = i.instance_id;
        if (i.instance_id === gone) { const e = new Error('InvalidInstanceId'); throw e; }
        return models.Dispatch(i);
      },
      Managed(i, call, world, models) {
        return i.instance_ids.includes(gone) ? { managed: false } : models.Managed(i);
      },
    },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  assert.ok(r.calls.some((c) => c.state === 'Check node'));
  const s = summaryOf(r, A);
  assert.deepEqual([s.nodes_started, s.nodes_lost, s.batches_done], [2, 1, 2]);
  return r;
});

scenario('a batch that loses every node: failed after N nodes, the next batch on a new node', async () => {
  const platforms = [[A, 3]];
  const r = await run({
    platforms,
    settings: { nodeAttempts: 3, instances: 10 },
    hooks: {
      Status(i, call, world, models) {
        const cmd = world.instanceOf[i.command_id];
        if (cmd.step === 'sync' && cmd.batch_key.endsWith('/1.json')) return copy(OUT.status.undeliverable);
        return models.Status(i);
      },
    },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  const s = summaryOf(r, A);
  assert.deepEqual([s.nodes_started, s.nodes_lost, s.batches_done, s.batches_failed], [4, 3, 2, 1]);
  assert.equal(s.last_error.batch, 1);
  assert.equal(s.last_error.error, 'ebfleet.NodeLost');
  assert.deepEqual(at(r.calls, A, 'Record').map((c) => c.input.batch), [0, 2]);
  const given = at(r.calls, A, LOST_LEASES);
  assert.deepEqual(given.map((c) => c.input), [{ release_leases: { execution: EXECUTION, platform: A, batch: 1 } }]);
  assert.ok(given[0].output, 'the lost batch gives up its leases');
  const afterGiveUp = of(r.calls, A).slice(of(r.calls, A).indexOf(given[0]) + 1);
  assert.equal(afterGiveUp.find((c) => c.fn !== 'Managed')?.state, 'Capacity', 'then the next batch on a new node');
  return r;
});

scenario('a node that never comes online counts as lost', async () => {
  const platforms = [[A, 1]];
  const r = await run({
    platforms,
    settings: { nodeAttempts: 2, instances: 5 },
    hooks: { Managed() { return { managed: false }; } },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  const s = summaryOf(r, A);
  assert.deepEqual([s.nodes_started, s.nodes_lost, s.batches_failed], [2, 2, 1]);
  assert.equal(s.last_error.error, 'ebfleet.NodeNotManaged');
  assert.equal(r.calls.filter((c) => c.state === 'Managed').length, 2 * 30, '30 checks per node');
  return r;
});

scenario('the instance cap stops a platform: the rest skipped, released', async () => {
  const platforms = [[A, 4], [B, 1]];
  const r = await run({
    platforms,
    settings: { nodeAttempts: 5, instances: 2 },
    hooks: {
      Status(i, call, world, models) {
        return call.platform === A ? copy(OUT.status.node_lost) : models.Status(i);
      },
    },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  const s = summaryOf(r, A);
  assert.deepEqual([s.nodes_started, s.batches_done, s.batches_skipped], [2, 0, 4]);
  assert.equal(s.last_error.error, 'ebfleet.InstanceCapReached');
  assert.equal(summaryOf(r, B).batches_done, 1);
  return r;
});

scenario('a failing build step: batch failed, the same node goes on', async () => {
  const platforms = [[A, 3]];
  const r = await run({
    platforms,
    hooks: {
      Status(i, call, world, models) {
        const cmd = world.instanceOf[i.command_id];
        if (cmd.step === 'build' && cmd.batch_key.endsWith('/0.json')) return copy(OUT.status.step_failed);
        return models.Status(i);
      },
    },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  const s = summaryOf(r, A);
  assert.deepEqual([s.nodes_started, s.batches_done, s.batches_failed], [1, 2, 1]);
  assert.equal(s.last_error.error, 'ebfleet.StepFailed');
  assert.match(s.last_error.cause, /^build of batch 0 on i-/);
  assert.deepEqual(at(r.calls, A, 'Record').map((c) => c.input.batch), [1, 2]);
  return r;
});

scenario('a Lease that fails: the batch fails without reaching its node, the node goes on', async () => {
  const platforms = [[A, 3]];
  const r = await run({
    platforms,
    stateHooks: {
      Lease(i, call, world, models) {
        if (i.lease.batch === 1) { const e = new Error('leasing zlib/1.3.1: access denied'); e.name = 'ebfleet.Failed'; throw e; }
        return models.Record(i);
      },
    },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  assert.equal(at(r.calls, A, 'Lease').filter((c) => c.input.lease.batch === 1).length, 3, 'retried twice, then caught');
  const dispatched = of(r.calls, A, 'Dispatch').map((c) => batchOf(c.input.batch_key));
  assert.ok(!dispatched.includes(1), 'nothing of batch 1 is sent to the node');
  const s = summaryOf(r, A);
  assert.deepEqual([s.nodes_started, s.nodes_lost, s.batches_done, s.batches_failed], [1, 0, 2, 1]);
  assert.deepEqual([s.last_error.batch, s.last_error.error], [1, 'ebfleet.Failed']);
  assert.deepEqual(at(r.calls, A, 'Record').map((c) => c.input.batch), [0, 2]);
  return r;
});

scenario('a Lease throttled once is retried, not a failure', async () => {
  const platforms = [[A, 2]];
  let n = 0;
  const r = await run({
    platforms,
    stateHooks: {
      Lease(i, call, world, models) {
        if (n++ === 0) { const e = new Error('GetItem throttled'); e.name = 'ebfleet.Transient'; throw e; }
        return models.Record(i);
      },
    },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  assert.deepEqual(at(r.calls, A, 'Lease').map((c) => [c.input.lease.batch, Boolean(c.output)]), [[0, false], [0, true], [1, true]]);
  assert.equal(summaryOf(r, A).batches_done, 2);
  return r;
});

scenario('another run holds the leases: the batch waits, counting down, then builds', async () => {
  const platforms = [[A, 2]];
  let held = 2;
  const r = await run({
    platforms,
    stateHooks: {
      Lease(i, call, world, models) {
        const out = models.Record(i);
        if (i.lease.batch === 1 && held > 0) { held--; return { ...out, leased: 0, held: 0, already_built: 0, waiting: 1 }; }
        return out;
      },
    },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  const leases = at(r.calls, A, 'Lease').map((c) => [c.input.lease.batch, c.input.lease.waits_left, c.output.waiting]);
  const w = leases[0][1];
  assert.ok(w > 2, `settings.lease_waits is ${w}`);
  assert.deepEqual(leases, [[0, w, 0], [1, w, 1], [1, w - 1, 1], [1, w - 2, 0]]);
  // Nothing is sent to the node while it waits.
  const sent = of(r.calls, A, 'Dispatch').map((c) => [batchOf(c.input.batch_key), c.input.step]);
  assert.deepEqual(sent.filter(([b]) => b === 1).map(([, s]) => s), STEP_ORDER);
  assert.equal(summaryOf(r, A).batches_done, 2);
  return r;
});

scenario('no capacity at all: every batch skipped, released by tag', async () => {
  const platforms = [[A, 3], [B, 1]];
  const r = await run({
    platforms,
    hooks: { Capacity(i, call, world, models) { if (i.platform === A) throw new Error('NoCapacity'); return models.Capacity(i); } },
  });
  assert.equal(r.error, undefined);
  invariants(r, platforms);
  const rel = of(r.calls, A, 'Release');
  assert.equal(rel.length, 1);
  assert.deepEqual(rel[0].input.instance_ids, []);
  const s = summaryOf(r, A);
  assert.deepEqual([s.nodes_started, s.batches_skipped, s.release], [0, 3, 'released']);
  assert.equal(summaryOf(r, B).batches_done, 1);
  return r;
});

scenario('release fails: the execution fails so the failed-execution rule releases again', async () => {
  const platforms = [[A, 1], [B, 1]];
  const r = await run({
    platforms,
    hooks: { Release(i, call, world, models) { if (i.platform === A) throw new Error('ec2 down'); return models.Release(i); } },
  });
  assert.equal(r.error, 'ebfleet.ReleaseFailed');
  assert.ok(of(r.calls, B, 'Release').some((c) => c.output), 'the other platform is released');
});

scenario('an error that escapes a platform fails the Map: every platform released by tag', async () => {
  const platforms = [[A, 2], [B, 1]];
  const r = await run({
    platforms,
    settings: { mapConcurrency: 1 },
    // A Task without its Catch stands for any error an iteration does not
    // handle. (States.Runtime is caught by no Catch at all: the execution
    // fails, and the stack's failed-execution rule releases.)
    mutate(def) { delete def.States.Platforms.ItemProcessor.States.Capacity.Catch; },
    hooks: { Capacity(i, call, world, models) { if (i.platform === B) throw new Error('boom'); return models.Capacity(i); } },
  });
  assert.equal(r.error, 'ebfleet.PipelineFailed');
  const released = r.calls.filter((c) => c.state === 'Release platform').map((c) => c.input);
  assert.deepEqual(released.map((i) => i.platform).sort(), [A, B].sort());
  assert.ok(released.every((i) => i.execution === EXECUTION && i.instance_ids.length === 0));
  return r;
});

// Every Task state of the per-platform loop failing for good on one
// platform: the execution still releases that platform and finishes the other.
const def0 = definition({});
const loopTasks = Object.entries(allStates(def0.States.Platforms.ItemProcessor))
  .filter(([, s]) => s.Type === 'Task').map(([n]) => n);
for (const failing of loopTasks) {
  scenario(`fault: ${failing} always fails on one platform`, async () => {
    const platforms = [[A, 2], [B, 2]];
    const fail = (st) => (i, call, world, models) => {
      if (call.platform === A) throw new Error(`injected in ${st}`);
      return models[call.fn](i, call);
    };
    const stateHooks = { [failing]: fail(failing) };
    // States reached only after another failure get that failure too.
    if (failing === 'Check node') stateHooks.Sync = fail('Sync');
    if (failing === 'Release lost node' || failing === LOST_LEASES) {
      stateHooks['Build status'] = (i, call, world, models) =>
        call.platform === A ? copy(OUT.status.node_lost) : models.Status(i);
    }
    const r = await run({ platforms, stateHooks, settings: { instances: 4 } });
    assert.ok(r.calls.some((c) => c.state === failing && c.error), `${failing} was reached and failed`);
    if (failing === 'Release') {
      assert.equal(r.error, 'ebfleet.ReleaseFailed');
    } else {
      assert.equal(r.error, undefined, `${failing}: ${r.error}`);
      invariants(r, platforms);
      assert.equal(summaryOf(r, A).release, 'released');
    }
    assert.ok(of(r.calls, B, 'Release').some((c) => c.output), 'the other platform is released');
    assert.equal(at(r.calls, B, 'Record').filter((c) => c.output).length, 2, 'the other platform builds');
  });
}

// --------------------------------------------------------------------- run

const seen = {};
let failed = 0;
for (const [name, f] of scenarios) {
  try {
    const r = await f();
    for (const c of r?.calls ?? []) {
      const text = JSON.stringify(c.input);
      if (!(c.state in seen) || text < JSON.stringify(seen[c.state].input)) seen[c.state] = { fn: c.fn, input: c.input };
    }
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${e.message.split('\n').join('\n     ')}`);
  }
}

// Every Task state of the definition was exercised, and its first input is
// the one the Rust contract test reads.
const tasks = Object.entries(allStates(def0)).filter(([, s]) => s.Type === 'Task').map(([n]) => n);
const unexercised = tasks.filter((t) => !(t in seen));
if (unexercised.length) { failed++; console.log(`FAIL task states never called: ${unexercised.join(', ')}`); }
const recorded = Object.fromEntries(Object.keys(seen).sort().map((k) => [k, seen[k]]));
const text = JSON.stringify(recorded, null, 2) + '\n';
if (UPDATE) {
  writeFileSync(INPUTS_FILE, text);
  console.log(`wrote ${path.relative(process.cwd(), INPUTS_FILE)}`);
} else if (readFileSync(INPUTS_FILE, 'utf8') !== text) {
  failed++;
  console.log(`FAIL ${path.basename(INPUTS_FILE)} differs from what the definition sends; rerun with --update and check the Rust contract test`);
}
console.log(`${scenarios.length} scenarios, ${failed} failed`);
process.exit(failed ? 1 : 0);
