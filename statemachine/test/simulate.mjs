// The three state machines (statemachine/*.asl.json) in a real ASL
// interpreter (aws-local-stepfunctions, through tests/sfn/local-sfn.mjs:
// task tokens, heartbeats, child executions, a virtual clock), every Lambda
// replaced by a small model of it; each scenario checks the workflow:
// every unit through Capacity, Lease, Sync, Build, Tar, Upload, Record and
// Release in order; a lost node's unit ended as node_lost and tried again;
// a unit leased elsewhere ending at once; a platform's pool made once and
// released on every path; platforms going on in new executions; histories
// bounded.
//
// The models answer with the shapes in lambda-outputs.json (the Rust test
// crates/ebfleet-control/tests/template.rs reads those into the handlers'
// output types). The first input each Task state sends is compared with
// task-inputs.json, which the same Rust test reads into the handlers' input
// types: a Parameters change that breaks a handler's contract fails one of
// the two.
//
// Usage: node simulate.mjs [--update]   (Node 22; EBFLEET_NODE_MODULES
// points at the node_modules holding aws-local-stepfunctions 3)

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import assert from 'node:assert/strict';
import { LocalStepFunctions, VirtualClock, ebfleetMachines, statesError, stateMachineArn } from '../../tests/sfn/local-sfn.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const UPDATE = process.argv.includes('--update');
const OUT = JSON.parse(readFileSync(path.join(here, 'lambda-outputs.json'), 'utf8'));
const INPUTS_FILE = path.join(here, 'task-inputs.json');
const copy = (v) => JSON.parse(JSON.stringify(v));
const A = 'amzn-2023_graviton-3';
const B = 'amzn-2023_epyc-gen-4';
const firstInputs = {};

/**
 * One run against models of the Lambdas. `platforms`: {name: units};
 * `hooks[fn](input, world)` may answer instead of the model (return
 * undefined to let it) or throw.
 */
async function run({ platforms, hooks = {}, ticksPerExecution = 1000, input = { mode: 'full' } }) {
  const clock = new VirtualClock();
  const machines = ebfleetMachines((f) => readFileSync(path.join(here, '..', f), 'utf8'));
  const world = {
    calls: [],
    units: {}, // platform -> [{attempt, outcome}]
    ended: {}, // platform -> count
    tokens: {}, // platform -> wait token
    ticks: {}, // platform -> ticks in this execution
    started: {}, // platform -> unit executions started
  };
  let svc;
  const short = (p) => p.split('_').slice(1).join('-');
  const unitName = (p, u, a) => `run-1-${short(p)}-u${u}-a${a}`;

  const models = {
    plan(i) {
      const out = copy(OUT.plan);
      out.execution = i.execution;
      out.plan_key = `plans/${i.execution}/plan.json`;
      const outputs = Object.entries(platforms).map(([name, units]) => ({
        ...copy(OUT.plan.platforms[0]),
        platform: name,
        to_build: units,
        graph_key: `plans/${i.execution}/${name}/graph.json`,
        name_prefix: `${i.execution}-${short(name)}`,
      }));
      // `<os>_<cpu>_<gpu>`: a CUDA overlay, built after its base `<os>_<cpu>`.
      const baseOf = (o) => o.platform.split('_').slice(0, 2).join('_');
      out.platforms = outputs.filter((o) => baseOf(o) === o.platform);
      for (const o of outputs.filter((o) => baseOf(o) !== o.platform)) {
        out.platforms.find((p) => p.platform === baseOf(o)).overlays.push(o);
      }
      out.nothing_to_do = Object.values(platforms).every((u) => u === 0);
      return out;
    },
    capacity(i) {
      if (i.pool) {
        const out = copy(OUT.capacity.pool);
        out.pool.name = `ebfleet-${i.pool.execution}-${i.pool.platform}`;
        return out;
      }
      return { instance_id: i.claim.instance_id };
    },
    schedule(i) {
      if (i.layer) {
        // The base built everything: nothing is held.
        const { platform } = i.layer;
        return { platform, base: platform.split('_').slice(0, 2).join('_'), to_build: platforms[platform], held: 0 };
      }
      if (i.wait) {
        const { platform, seen, task_token } = i.wait;
        if ((world.ended[platform] ?? 0) > seen) svc.sendTaskSuccess(task_token, '{}');
        else world.tokens[platform] = task_token;
        return {};
      }
      // A tick: end the units that ended, start what is ready (the model:
      // every unit is independent), done when every unit succeeded.
      const t = i.tick;
      const p = t.platform;
      let orphaned = false;
      try {
        svc.sendTaskHeartbeat(t.run_token);
      } catch {
        orphaned = true;
      }
      world.ticks[p] = (world.ticks[p] ?? 0) + 1;
      const units = (world.units[p] ??= Array.from({ length: platforms[p] }, () => ({ attempt: 0, arn: null, outcome: null })));
      for (const u of units) {
        if (u.arn && u.outcome === null) {
          const d = svc.describe(u.arn);
          if (d.status !== 'RUNNING') u.outcome = d.status === 'SUCCEEDED' ? JSON.parse(d.output).outcome : 'node_lost';
        }
        if (u.outcome === 'node_lost' || u.outcome === 'held') {
          u.arn = null;
          u.outcome = null;
        }
      }
      const seen = world.ended[p] ?? 0;
      let dispatched = 0;
      units.forEach((u, n) => {
        if (u.arn || dispatched >= 4) return;
        u.attempt++;
        dispatched++;
        const name = unitName(p, n, u.attempt);
        u.arn = svc.start(stateMachineArn('ebfleet-unit'), name, {
          execution: t.execution, platform: p, unit: n, attempt: u.attempt, module: `m${n}/1`,
          unit_key: `plans/${t.execution}/${p}/${n}.json`, instance_id: `i-${String(n % 4).padStart(17, '0')}`,
        }).executionArn;
        (world.started[p] ??= []).push(name);
      });
      const done = units.every((u) => u.outcome && u.outcome !== 'node_lost');
      const next = !done && world.ticks[p] >= ticksPerExecution;
      if (next) world.ticks[p] = 0;
      return { ...copy(OUT.schedule.tick), done, next_execution: next, orphaned, seen, dispatched };
    },
    dispatch(i) {
      // The node: the step ends a virtual minute later and calls back.
      clock.after(60, () => {
        try {
          svc.sendTaskSuccess(i.task_token, JSON.stringify({ step: i.step, result: {} }));
        } catch {
          // The task ended meanwhile (timed out): a node's late callback.
        }
      });
      return copy(OUT.dispatch);
    },
    record(i) {
      if (i.lease) return { ...copy(OUT.lease), leases_key: `plans/${i.lease.execution}/${i.lease.platform}/${i.lease.batch}.leases.json` };
      if (i.done) {
        const d = i.done;
        let outcome = 'built';
        if (d.failure) outcome = 'node_lost';
        else if (d.lease && d.lease.held > 0) outcome = 'held';
        world.ended[d.platform] = (world.ended[d.platform] ?? 0) + 1;
        const token = world.tokens[d.platform];
        delete world.tokens[d.platform];
        if (token) {
          try {
            svc.sendTaskSuccess(token, '{}');
          } catch {
            // The wait timed out meanwhile.
          }
        }
        return { unit: d.unit, attempt: d.attempt, outcome };
      }
      const u = i.staged;
      return { ...copy(OUT.record), manifest_key: `${u.platform}/manifests/${u.execution}/${u.batch}.json` };
    },
    release(i) {
      if (i.summary) return { ...copy(OUT.summary), summary_key: `plans/${i.summary.execution}/summary.json` };
      return { ...copy(OUT.release), pools_deleted: i.platform ? [`ebfleet-${i.execution}-${i.platform}`] : [] };
    },
  };

  const invoke = async (fn, payload) => {
    const call = { fn, input: copy(payload), platform: platformOf(payload) };
    world.calls.push(call);
    const key = `${fn}:${Object.keys(payload).sort().join(',')}`;
    firstInputs[key] ??= copy(payload);
    const hooked = hooks[fn]?.(payload, world);
    if (hooked !== undefined) return (call.output = hooked);
    return (call.output = models[fn](payload));
  };
  svc = new LocalStepFunctions({ machines, invoke, clock, randomTokens: false });
  world.svc = svc;
  const { executionArn } = svc.start(stateMachineArn('ebfleet-pipeline'), 'run-1', input);
  const d = await svc.wait(executionArn);
  return { d, world, svc, output: d.output ? JSON.parse(d.output) : undefined };
}

function platformOf(i) {
  return i.platform ?? i.pool?.platform ?? i.tick?.platform ?? i.wait?.platform ?? i.layer?.platform ?? i.lease?.platform ?? i.done?.platform;
}

/** The units' executions of one platform, in start order: the states each went through. */
function unitPaths(r, platform) {
  return (r.world.started[platform] ?? []).map((name) => {
    const arn = `arn:aws:states:us-east-1:123456789012:execution:ebfleet-unit:${name}`;
    return { name, d: r.svc.describe(arn) };
  });
}

/** What must hold after every run. */
function invariants(r, platforms) {
  for (const p of Object.keys(platforms)) {
    const mine = r.world.calls.filter((c) => c.platform === p);
    const pools = mine.filter((c) => c.fn === 'capacity' && c.input.pool);
    if (!pools.length) continue;
    assert.equal(pools.length, 1, `${p}: one pool per run`);
    const releases = mine.filter((c) => c.fn === 'release');
    assert.ok(releases.length >= 1, `${p}: the pool was never released`);
    const lastRelease = mine.lastIndexOf(releases[releases.length - 1]);
    const afterTicks = mine.slice(lastRelease).filter((c) => c.fn === 'schedule' && c.input.tick);
    assert.equal(afterTicks.length, 0, `${p}: a tick after the release`);
    for (const { name, d } of unitPaths(r, p)) {
      assert.notEqual(d.status, 'RUNNING', `${name} still running`);
    }
  }
}

const scenarios = [];
const scenario = (name, f) => scenarios.push([name, f]);

scenario('every unit through its states in order; one pool per platform, released', async () => {
  const platforms = { [A]: 5, [B]: 3 };
  const r = await run({ platforms });
  assert.equal(r.d.status, 'SUCCEEDED', `${r.d.error}: ${r.d.cause}`);
  invariants(r, platforms);
  for (const [p, n] of Object.entries(platforms)) {
    const s = r.output.platforms.find((x) => x.platform === p);
    assert.ok(s && !s.failed, `${p}: ${JSON.stringify(s)}`);
    const units = unitPaths(r, p);
    assert.equal(units.length, n, `${p}: one execution per unit`);
    for (const { d } of units) assert.equal(JSON.parse(d.output).outcome, 'built');
    // Per unit: claim, lease, four steps (in order), record, done.
    for (let u = 0; u < n; u++) {
      const calls = r.world.calls.filter((c) => c.platform === p && (c.input.done?.unit === u || c.input.lease?.batch === u)
        || (c.fn === 'dispatch' && c.input.batch_key.endsWith(`/${p}/${u}.json`)));
      const steps = calls.filter((c) => c.fn === 'dispatch').map((c) => c.input.step);
      assert.deepEqual(steps, ['sync', 'build', 'tar', 'upload'], `${p} unit ${u}: steps ${steps}`);
      assert.ok(calls[0].input.lease && calls[calls.length - 1].input.done, `${p} unit ${u}: lease first, done last`);
    }
  }
});

scenario('a CUDA overlay starts once its base has ended, and is summarised with it', async () => {
  const G = 'amzn-2023_epyc-gen-4_h100';
  // A takes longer than B: the overlay on B does not wait for it.
  const platforms = { [A]: 12, [B]: 2, [G]: 2 };
  const r = await run({ platforms });
  assert.equal(r.d.status, 'SUCCEEDED', `${r.d.error}: ${r.d.cause}`);
  invariants(r, platforms);
  const at = (pred) => r.world.calls.findIndex(pred);
  const firstOverlay = at((c) => c.platform === G);
  const lastRelease = (p) => r.world.calls.findLastIndex((c) => c.platform === p && c.fn === 'release');
  assert.ok(lastRelease(B) >= 0 && lastRelease(B) < firstOverlay, 'the overlay began before its base ended');
  assert.ok(lastRelease(A) > firstOverlay, 'the overlay waited for another platform');
  assert.deepEqual(r.output.platforms.map((x) => x.platform).sort(), [A, B].sort());
  const b = r.output.platforms.find((x) => x.platform === B);
  const g = b.overlays.find((x) => x.platform === G);
  assert.ok(g && !g.failed, JSON.stringify(b));
  assert.equal(unitPaths(r, G).length, 2);
  // Laid over its base first, once; the platforms are not.
  const layers = r.world.calls.filter((c) => c.fn === 'schedule' && c.input.layer);
  assert.deepEqual(layers.map((c) => c.platform), [G]);
  assert.ok(at((c) => c === layers[0]) < at((c) => c.platform === G && c.fn === 'capacity'), 'layered after the pool');
});

scenario('a platform goes on in new executions with the same pool', async () => {
  const platforms = { [A]: 12 };
  const r = await run({ platforms, ticksPerExecution: 2 });
  assert.equal(r.d.status, 'SUCCEEDED', `${r.d.error}: ${r.d.cause}`);
  invariants(r, platforms);
  const gens = r.svc.list(stateMachineArn('ebfleet-platform')).map((x) => x.name).sort();
  assert.ok(gens.length >= 2, `platform executions: ${gens}`);
  assert.ok(gens.every((g, n) => g === `run-1-graviton-3-g${n}`), `${gens}`);
  const ticks = r.world.calls.filter((c) => c.fn === 'schedule' && c.input.tick);
  assert.ok(ticks.every((c) => c.input.tick.pool.name === `ebfleet-run-1-${A}`), 'the same pool in every execution');
});

scenario('a node whose heartbeat stops: the unit ends node_lost and is tried again', async () => {
  const platforms = { [A]: 2 };
  let lost = false;
  const r = await run({
    platforms,
    hooks: {
      // Attempt 1 of unit 1: the build never calls back nor beats.
      dispatch: (i) => {
        if (i.step !== 'build' || !i.batch_key.endsWith('/1.json') || lost) return undefined;
        lost = true;
        return {};
      },
    },
  });
  assert.equal(r.d.status, 'SUCCEEDED', `${r.d.error}: ${r.d.cause}`);
  invariants(r, platforms);
  const u1 = unitPaths(r, A).filter((x) => x.name.includes('-u1-'));
  assert.deepEqual(u1.map((x) => JSON.parse(x.d.output).outcome), ['node_lost', 'built']);
  const done = r.world.calls.find((c) => c.input.done?.unit === 1 && c.input.done.failure);
  assert.equal(done.input.done.failure.Error, 'States.HeartbeatTimeout');
  // Unit 0 built once.
  assert.equal(unitPaths(r, A).filter((x) => x.name.includes('-u0-')).length, 1);
});

scenario("SSM's side reports a node lost: the task fails at once, the unit goes again", async () => {
  const platforms = { [B]: 1 };
  let failed = false;
  const r = await run({
    platforms,
    hooks: {
      dispatch: (i, world) => {
        if (i.step !== 'sync' || failed) return undefined;
        failed = true;
        // The dispatch Lambda, taking SSM's Undeliverable event.
        setImmediate(() => world.svc.sendTaskFailure(i.task_token, 'ebfleet.NodeLost', 'command c-1 on i-1: Undeliverable'));
        return {};
      },
    },
  });
  assert.equal(r.d.status, 'SUCCEEDED');
  invariants(r, platforms);
  const outcomes = unitPaths(r, B).map((x) => JSON.parse(x.d.output).outcome);
  assert.deepEqual(outcomes, ['node_lost', 'built']);
});

scenario('a unit leased elsewhere ends at once without touching its node', async () => {
  const platforms = { [A]: 1 };
  let held = false;
  const r = await run({
    platforms,
    hooks: { record: (i) => (i.lease && !held ? ((held = true), { ...copy(OUT.lease), leased: 0, held: 1, held_until: 1 }) : undefined) },
  });
  assert.equal(r.d.status, 'SUCCEEDED');
  invariants(r, platforms);
  const outcomes = unitPaths(r, A).map((x) => JSON.parse(x.d.output).outcome);
  assert.deepEqual(outcomes, ['held', 'built']);
  const steps = r.world.calls.filter((c) => c.fn === 'dispatch');
  assert.equal(steps.length, 4, 'the held try sent nothing to its node');
});

scenario("a platform whose scheduler fails is released and reported; the others go on", async () => {
  const platforms = { [A]: 2, [B]: 2 };
  const r = await run({
    platforms,
    hooks: { schedule: (i) => { if (i.tick?.platform === B) throw statesError('ebfleet.Failed', 'the graph is gone'); } },
  });
  assert.equal(r.d.status, 'SUCCEEDED', 'one platform does not fail the run');
  invariants(r, platforms);
  const b = r.output.platforms.find((x) => x.platform === B);
  assert.equal(b.failed, true);
  const a = r.output.platforms.find((x) => x.platform === A);
  assert.ok(!a.failed);
  const releasesB = r.world.calls.filter((c) => c.fn === 'release' && c.platform === B);
  assert.ok(releasesB.length >= 1);
});

scenario('a platform execution stopped from outside: the run releases its pool once it stops beating', async () => {
  const platforms = { [A]: 3, [B]: 1 };
  let stopped = false;
  const r = await run({
    platforms,
    hooks: {
      schedule: (i, world) => {
        if (i.tick?.platform !== A || stopped) return undefined;
        stopped = true;
        // Someone stops A's execution in the console mid-run.
        setImmediate(() => {
          const g0 = world.svc.list(stateMachineArn('ebfleet-platform')).find((x) => x.name.includes('graviton'));
          world.svc.stop(g0.executionArn, 'Stopped', 'by hand');
        });
        return undefined;
      },
    },
  });
  assert.equal(r.d.status, 'SUCCEEDED');
  const a = r.output.platforms.find((x) => x.platform === A);
  assert.equal(a.failed, true);
  assert.equal(a.error, 'States.HeartbeatTimeout');
  assert.ok(r.world.calls.some((c) => c.fn === 'release' && c.platform === A), 'A released by the run');
  assert.ok(!r.output.platforms.find((x) => x.platform === B).failed);
});

scenario('transient Lambda errors are retried, not failures', async () => {
  const platforms = { [A]: 1 };
  let n = 0;
  const r = await run({
    platforms,
    hooks: { record: (i) => { if (i.lease && n++ < 2) throw statesError('Lambda.TooManyRequestsException', 'slow down'); } },
  });
  assert.equal(r.d.status, 'SUCCEEDED');
  assert.deepEqual(unitPaths(r, A).map((x) => JSON.parse(x.d.output).outcome), ['built']);
});

scenario("the run's summary is stored with each platform's cost; the output keeps its fields", async () => {
  const platforms = { [A]: 2, [B]: 1 };
  const r = await run({ platforms });
  assert.equal(r.d.status, 'SUCCEEDED', `${r.d.error}: ${r.d.cause}`);
  invariants(r, platforms);
  for (const k of ['execution', 'plan_key', 'nothing_to_do', 'platforms']) assert.ok(k in r.output, `${k} in the output`);
  assert.equal(r.output.nothing_to_do, false);
  for (const p of Object.keys(platforms)) {
    const s = r.output.platforms.find((x) => x.platform === p);
    for (const k of ['units', 'nodes_max', 'instances_launched', 'node_seconds', 'released']) assert.ok(k in s, `${p}: ${k}`);
    assert.deepEqual(s.cost, OUT.schedule.tick.cost, `${p}: the done tick's cost reaches the run`);
  }
  const stores = r.world.calls.filter((c) => c.fn === 'release' && c.input.summary);
  assert.equal(stores.length, 1, 'stored once, at the end');
  assert.equal(r.world.calls[r.world.calls.length - 1], stores[0], 'the last call');
  assert.deepEqual(stores[0].input.summary.platforms, r.output.platforms, 'what is stored is what the run reports');
  assert.equal(stores[0].input.summary.execution, 'run-1');
  assert.equal(r.output.stored.summary_key, 'plans/run-1/summary.json');
  assert.ok(!('summary_failure' in r.output));
});

scenario('a summary that cannot be stored does not fail the run; the output still holds the summary', async () => {
  const platforms = { [A]: 1 };
  const r = await run({
    platforms,
    hooks: { release: (i) => { if (i.summary) throw statesError('ebfleet.Failed', 'AccessDenied on plans/run-1/summary.json'); } },
  });
  assert.equal(r.d.status, 'SUCCEEDED', `${r.d.error}: ${r.d.cause}`);
  invariants(r, platforms);
  assert.equal(r.output.summary_failure.Error, 'ebfleet.Failed');
  assert.ok(!('stored' in r.output));
  const a = r.output.platforms.find((x) => x.platform === A);
  assert.ok(a && !a.failed && a.cost, JSON.stringify(a));
});

scenario('nothing to do: no platform execution, no pool', async () => {
  const r = await run({ platforms: { [A]: 0 } });
  assert.equal(r.d.status, 'SUCCEEDED');
  assert.equal(r.output.nothing_to_do, true);
  assert.equal(r.output.stored.summary_key, 'plans/run-1/summary.json', 'a run with nothing to do has its summary too');
  assert.equal(r.svc.list(stateMachineArn('ebfleet-platform')).length, 0);
});

scenario('the plan fails: the run fails, nothing started', async () => {
  const r = await run({ platforms: { [A]: 3 }, hooks: { plan: () => { throw statesError('ebfleet.Invalid', 'bad platforms'); } } });
  assert.equal(r.d.status, 'FAILED');
  assert.equal(r.d.error, 'ebfleet.PlanFailed');
  assert.equal(r.world.calls.filter((c) => c.fn !== 'plan').length, 0);
});

scenario("no execution's history grows with the plan: 600 units, 60 ticks an execution", async () => {
  const platforms = { [A]: 600 };
  const r = await run({ platforms, ticksPerExecution: 60 });
  assert.equal(r.d.status, 'SUCCEEDED', `${r.d.error}: ${r.d.cause}`);
  invariants(r, platforms);
  const counts = [...r.svc.executions.values()].map((x) => [x.machine.name, x.events]);
  const max = (m) => Math.max(...counts.filter(([n]) => n === m).map(([, e]) => e));
  const platformExecs = counts.filter(([n]) => n === 'ebfleet-platform').length;
  assert.ok(platformExecs >= 3, `${platformExecs} platform executions`);
  // Per execution: a unit about 60 events, a platform ~13 a tick.
  assert.ok(max('ebfleet-unit') < 100, `unit: ${max('ebfleet-unit')}`);
  assert.ok(max('ebfleet-platform') < 60 * 20, `platform: ${max('ebfleet-platform')}`);
  assert.ok(max('ebfleet-pipeline') < 200, `pipeline: ${max('ebfleet-pipeline')}`);
  console.log(`     events per execution: unit ${max('ebfleet-unit')}, platform ${max('ebfleet-platform')}, pipeline ${max('ebfleet-pipeline')}; ${counts.length} executions`);
});

let failed = 0;
for (const [name, f] of scenarios) {
  try {
    await f();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n${e.stack ?? e}`);
  }
}

// The first input of each kind of Lambda call, for the Rust contract test.
const inputs = Object.fromEntries(Object.entries(firstInputs).sort());
if (UPDATE) {
  writeFileSync(INPUTS_FILE, JSON.stringify(inputs, null, 2) + '\n');
} else {
  try {
    assert.deepEqual(JSON.parse(readFileSync(INPUTS_FILE, 'utf8')), inputs);
  } catch (e) {
    failed++;
    console.log(`FAIL task-inputs.json differs from what the state machines send (run with --update and check the Rust contract test)\n${e.message.slice(0, 3000)}`);
  }
}
process.exit(failed ? 1 : 0);
