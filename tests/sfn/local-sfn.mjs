// Step Functions, locally: the state machines run in aws-local-stepfunctions
// (a real ASL interpreter); this adds what it lacks and the pipeline needs.
//
// - Task tokens: a `.waitForTaskToken` task gets a fresh token in
//   `$$.Task.Token` (through the context object) and waits until
//   SendTaskSuccess / SendTaskFailure names it; SendTaskHeartbeat resets
//   its HeartbeatSeconds, which this enforces (the interpreter ignores it),
//   as it enforces TimeoutSeconds, on its own clock.
// - Child executions: `states:startExecution.sync:2` runs the child state
//   machine here and returns its DescribeExecution answer, Output as JSON;
//   StartExecution (from a Lambda) starts one in the background.
// - The Step Functions JSON API on 127.0.0.1 (`listen`), for the SDK
//   clients of the Lambdas, the build nodes and the test scripts:
//   StartExecution, DescribeExecution, StopExecution, ListExecutions,
//   SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat.
// - History: every execution's events as AWS would record them, counted
//   from the interpreter's event log (`historyEvents`).
// - A clock: real time (optionally scaled: every TimeoutSeconds and
//   HeartbeatSeconds times `timeScale`), or a virtual clock for a
//   discrete-event simulation: nothing waits; when nothing is running
//   (no Lambda call in flight, no state moving), time jumps to the next
//   timer (a task's timeout, a simulated build's end).
//
// Lambda tasks are sent to `invoke(functionName, payload, now)`; the
// caller decides how (cargo lambda watch over HTTP, a server of the real
// handlers, or models).

import { createRequire } from 'node:module';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

const ACCOUNT = '123456789012';
const REGION = 'us-east-1';
// Longer than any test, within setTimeout's 2^31 ms.
const FOREVER_S = 2_000_000;

export const stateMachineArn = (name) => `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${name}`;
export const executionArn = (sm, name) => `arn:aws:states:${REGION}:${ACCOUNT}:execution:${sm}:${name}`;

/** An error a state's Retry and Catch match by `name`. */
export function statesError(name, cause) {
  const e = new Error(cause ?? name);
  e.name = name;
  return e;
}

/** A clock in real time. */
export class RealClock {
  constructor(timeScale = 1) {
    this.timeScale = timeScale;
  }
  now() {
    return Date.now() / 1000;
  }
  /** Call `fn` after `seconds` (scaled); returns a cancel function. */
  after(seconds, fn) {
    const t = setTimeout(fn, Math.max(0, seconds * this.timeScale * 1000));
    return () => clearTimeout(t);
  }
  busy() {}
  idle() {}
  touch() {}
}

/**
 * A virtual clock: `now` moves only when nothing is running. Work in
 * flight is counted with `busy()`/`idle()`; any progress (`touch()`)
 * postpones the jump, so a state machine moving from one state to the next
 * is never mistaken for quiet.
 */
export class VirtualClock {
  constructor(start = 1_800_000_000) {
    this.t = start;
    this.timers = [];
    this.seq = 0;
    this.inflight = 0;
    this.activity = 0;
    this.checking = false;
    this.timeScale = 1;
  }
  now() {
    return this.t;
  }
  after(seconds, fn) {
    const timer = { at: this.t + Math.max(0, seconds), seq: ++this.seq, fn, live: true };
    this.timers.push(timer);
    this.schedule();
    return () => {
      timer.live = false;
    };
  }
  busy() {
    this.inflight++;
    this.activity++;
  }
  idle() {
    this.inflight--;
    this.activity++;
    this.schedule();
  }
  touch() {
    this.activity++;
    this.schedule();
  }
  schedule() {
    if (this.checking) return;
    this.checking = true;
    this.settle(0, this.activity);
  }
  // Quiet for a few turns of the event loop: advance to the next timer(s).
  settle(rounds, seen) {
    setImmediate(() => {
      if (this.inflight > 0 || this.activity !== seen) {
        if (this.inflight > 0) {
          this.checking = false;
          return;
        }
        return this.settle(0, this.activity);
      }
      if (rounds < 3) return this.settle(rounds + 1, seen);
      this.checking = false;
      this.timers = this.timers.filter((t) => t.live);
      if (!this.timers.length) return;
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const at = this.timers[0].at;
      if (at > this.t) this.t = at;
      const due = [];
      while (this.timers.length && this.timers[0].at <= this.t) due.push(this.timers.shift());
      this.activity++;
      for (const d of due) if (d.live) d.fn();
      this.schedule();
    });
  }
}

/** AWS history events a state's interpreter event stands for. */
function awsEvents(e, state) {
  const type = state?.Type;
  const callback = type === 'Task' && /(\.waitForTaskToken|\.sync(:2)?)$/.test(state.Resource ?? '');
  switch (e.type) {
    case 'ExecutionStarted':
    case 'ExecutionSucceeded':
    case 'ExecutionFailed':
    case 'ExecutionAborted':
    case 'ExecutionTimeout':
      return 1;
    case 'StateEntered':
      if (type === 'Task') return callback ? 5 : 4; // entered, scheduled, started, [submitted], ended
      if (type === 'Map' || type === 'Parallel') return 2; // entered, started
      return 1;
    case 'StateExited':
      if (type === 'Map' || type === 'Parallel') return 2; // succeeded, exited
      return 1;
    case 'StateRetried':
      return callback ? 4 : 3; // scheduled, started, [submitted], ended again
    case 'MapIterationStarted':
    case 'MapIterationSucceeded':
    case 'MapIterationFailed':
    case 'ParallelBranchStarted':
    case 'ParallelBranchSucceeded':
    case 'ParallelBranchFailed':
      return 1;
    default:
      return 0; // StateFailed and StateCaught: counted with the attempt
  }
}

function allStates(def, into = {}) {
  for (const [name, s] of Object.entries(def.States)) {
    into[name] = s;
    if (s.ItemProcessor) allStates(s.ItemProcessor, into);
    if (s.Iterator) allStates(s.Iterator, into);
    for (const b of s.Branches ?? []) allStates(b, into);
  }
  return into;
}

/** The definition the interpreter runs: timeouts left to this service. */
function forInterpreter(def) {
  const copy = JSON.parse(JSON.stringify(def));
  delete copy.TimeoutSeconds;
  for (const s of Object.values(allStates(copy))) {
    if (s.Type === 'Task') {
      delete s.HeartbeatSeconds;
      s.TimeoutSeconds = FOREVER_S;
    }
  }
  return copy;
}

export class LocalStepFunctions {
  /**
   * `machines`: {name: definition object (substituted)}; `invoke(fn,
   * payload, now)`: a Lambda call (rejects with an Error whose `name` is
   * the error type); `clock`: RealClock or VirtualClock; `waitMs`: what a
   * Wait state waits (default 0).
   */
  constructor({ machines, invoke, clock = new RealClock(), waitMs = 0, log = () => {}, randomTokens = true }) {
    const modules = process.env.EBFLEET_NODE_MODULES;
    if (!modules) throw new Error('EBFLEET_NODE_MODULES is not set');
    const { StateMachine } = createRequire(path.join(modules, 'x.js'))('aws-local-stepfunctions');
    this.invoke = invoke;
    this.clock = clock;
    this.log = log;
    this.machines = {};
    for (const [name, def] of Object.entries(machines)) {
      const states = allStates(def);
      const waits = {};
      const retries = {};
      for (const [n, s] of Object.entries(states)) {
        if (s.Type === 'Wait') waits[n] = waitMs;
        if (Array.isArray(s.Retry)) retries[n] = 0;
      }
      this.machines[name] = {
        name,
        arn: stateMachineArn(name),
        def,
        states,
        waits,
        retries,
        sm: new StateMachine(forInterpreter(def), { validationOptions: { checkArn: true, checkPaths: true } }),
      };
    }
    this.executions = new Map(); // arn -> execution
    this.tasks = new Map(); // token -> waiting task
    this.tokenSeq = 0;
    this.randomTokens = randomTokens;
  }

  machine(arnOrName) {
    const name = arnOrName.startsWith('arn:') ? arnOrName.split(':').pop() : arnOrName;
    const m = this.machines[name];
    if (!m) throw Object.assign(statesError('StateMachineDoesNotExist', `no state machine ${arnOrName}`), { status: 400 });
    return m;
  }

  // ------------------------------------------------------------- executions

  /** Start an execution; its record at once, its run in the background. */
  start(machineArn, name, input) {
    const m = this.machine(machineArn);
    const arn = executionArn(m.name, name);
    if (this.executions.has(arn)) {
      throw Object.assign(statesError('ExecutionAlreadyExists', `execution ${arn} exists`), { status: 400 });
    }
    const x = {
      arn,
      name,
      machine: m,
      input,
      status: 'RUNNING',
      startDate: this.clock.now(),
      stopDate: undefined,
      output: undefined,
      error: undefined,
      cause: undefined,
      events: 0,
      done: undefined,
    };
    this.executions.set(arn, x);
    const self = this;
    const context = {
      Execution: { Id: arn, Name: name, StartTime: new Date(x.startDate * 1000).toISOString() },
      StateMachine: { Id: m.arn, Name: m.name },
      Task: {
        get Token() {
          return self.newToken(x);
        },
      },
    };
    const handlers = {};
    for (const [stateName, s] of Object.entries(m.states)) {
      if (s.Type === 'Task') {
        handlers[stateName] = (taskInput) => this.task(x, stateName, s, taskInput).catch((e) => {
          this.log(`${x.name} ${stateName}: ${e.name}: ${String(e.message).slice(0, 500)}`);
          throw e;
        });
      }
    }
    this.clock.touch();
    const run = m.sm.run(input, {
      overrides: { taskResourceLocalHandlers: handlers, waitTimeOverrides: m.waits, retryIntervalOverrides: m.retries },
      context,
    });
    x.abort = run.abort;
    (async () => {
      for await (const e of run.eventLogs) {
        const stateName = e.state?.name ?? e.parentState?.name;
        x.events += awsEvents(e, stateName ? m.states[stateName] : undefined);
        this.clock.touch();
      }
    })().catch(() => {});
    x.done = run.result.then(
      (output) => {
        x.status = 'SUCCEEDED';
        x.output = output;
      },
      (e) => {
        if (x.status !== 'ABORTED') {
          x.status = 'FAILED';
          x.error = e.cause?.name ?? e.name;
          x.cause = String(e.cause?.message ?? e.message);
        }
      },
    ).then(() => {
      x.stopDate = this.clock.now();
      this.log(`${x.name}: ${x.status}${x.error ? ` ${x.error}: ${x.cause?.slice(0, 300)}` : ''}`);
      this.clock.touch();
    });
    return { executionArn: arn, startDate: x.startDate };
  }

  describe(arn) {
    const x = this.executions.get(arn);
    if (!x) throw Object.assign(statesError('ExecutionDoesNotExist', `no execution ${arn}`), { status: 400 });
    const out = {
      executionArn: x.arn,
      stateMachineArn: x.machine.arn,
      name: x.name,
      status: x.status,
      startDate: x.startDate,
      input: JSON.stringify(x.input),
    };
    if (x.stopDate !== undefined) out.stopDate = x.stopDate;
    if (x.status === 'SUCCEEDED') out.output = JSON.stringify(x.output);
    if (x.error !== undefined) {
      out.error = x.error;
      out.cause = x.cause;
    }
    return out;
  }

  stop(arn, error, cause) {
    const x = this.executions.get(arn);
    if (!x) throw Object.assign(statesError('ExecutionDoesNotExist', `no execution ${arn}`), { status: 400 });
    if (x.status === 'RUNNING') {
      x.status = 'ABORTED';
      x.error = error;
      x.cause = cause;
      x.abort();
      // Its tasks are gone (a callback for one is TaskDoesNotExist); no
      // state of it waits for them any more, so nothing is rejected.
      for (const [token, t] of this.tasks) {
        if (t.execution !== x) continue;
        this.tasks.delete(token);
        for (const c of t.cancel ?? []) c();
        t.stopBeat?.();
      }
    }
    return { stopDate: this.clock.now() };
  }

  list(machineArn, status) {
    const m = this.machine(machineArn);
    return [...this.executions.values()]
      .filter((x) => x.machine === m && (!status || x.status === status))
      .map((x) => ({
        executionArn: x.arn,
        stateMachineArn: m.arn,
        name: x.name,
        status: x.status,
        startDate: x.startDate,
        ...(x.stopDate !== undefined ? { stopDate: x.stopDate } : {}),
      }));
  }

  /** Wait for an execution to end; its DescribeExecution answer. */
  async wait(arn) {
    await this.executions.get(arn).done;
    return this.describe(arn);
  }

  /** AWS history events of one execution (Map and Parallel inner states included). */
  historyEvents(arn) {
    return this.executions.get(arn).events;
  }

  // ----------------------------------------------------------------- tasks

  newToken(execution) {
    // Random as AWS's are (a token is a capability), or numbered, for a
    // test that compares what the states send.
    const token = this.randomTokens ? `${randomBytes(24).toString('base64url')}.${++this.tokenSeq}` : `token-${++this.tokenSeq}`;
    this.tasks.set(token, { execution, resolve: undefined, reject: undefined, early: undefined });
    return token;
  }

  /** One Task state's work; rejects with the error a Retry or Catch matches. */
  async task(x, stateName, state, input) {
    const resource = state.Resource;
    switch (resource) {
      case 'arn:aws:states:::states:startExecution.sync:2':
        return this.childSync(input);
      case 'arn:aws:states:::states:startExecution': {
        const started = this.start(input.StateMachineArn, input.Name, input.Input ?? {});
        return { ExecutionArn: started.executionArn, StartDate: started.startDate };
      }
      case 'arn:aws:states:::states:startExecution.waitForTaskToken':
        return this.callback(x, state, input, () => this.start(input.StateMachineArn, input.Name, input.Input ?? {}));
      case 'arn:aws:states:::lambda:invoke.waitForTaskToken':
        return this.callback(x, state, input, () => this.call(input.FunctionName.split(':').pop(), input.Payload));
      case 'arn:aws:states:::aws-sdk:sfn:sendTaskSuccess':
        return this.sdk(() => this.sendTaskSuccess(input.TaskToken, typeof input.Output === 'string' ? input.Output : JSON.stringify(input.Output)));
      case 'arn:aws:states:::aws-sdk:sfn:sendTaskFailure':
        return this.sdk(() => this.sendTaskFailure(input.TaskToken, input.Error, input.Cause));
      default:
    }
    const fn = resource.match(/:function:([^:]+)$/)?.[1];
    if (!fn) throw new Error(`state ${stateName}: resource ${resource} is not served here`);
    return this.call(fn, input);
  }

  async call(fn, payload) {
    this.clock.busy();
    try {
      return await this.invoke(fn, payload, this.clock.now());
    } finally {
      this.clock.idle();
    }
  }

  /** An AWS SDK integration: its errors named as Step Functions names them. */
  async sdk(f) {
    try {
      return f();
    } catch (e) {
      throw statesError(`Sfn.${e.name}`, e.message);
    }
  }

  /**
   * A `.waitForTaskToken` task: `begin()` hands the token on (a Lambda
   * call, a child execution); the task ends when the token comes back.
   */
  async callback(x, state, input, begin) {
    const token = findToken(input, this.tasks);
    if (!token) throw new Error('a .waitForTaskToken task without $$.Task.Token in its input');
    const waiting = new Promise((resolve, reject) => {
      const t = this.tasks.get(token);
      t.resolve = resolve;
      t.reject = reject;
      t.execution = x;
      t.cancel = [];
      if (state.TimeoutSeconds) {
        t.cancel.push(this.clock.after(state.TimeoutSeconds, () =>
          this.settleTask(token, null, statesError('States.Timeout', `no result within ${state.TimeoutSeconds} s`))));
      }
      if (state.HeartbeatSeconds) {
        t.heartbeatSeconds = state.HeartbeatSeconds;
        t.beat = () => {
          t.stopBeat?.();
          t.stopBeat = this.clock.after(t.heartbeatSeconds, () =>
            this.settleTask(token, null, statesError('States.HeartbeatTimeout', `no heartbeat for ${t.heartbeatSeconds} s`)));
        };
        t.beat();
      }
      if (t.early) this.settleTask(token, t.early.output, t.early.error);
    });
    // Handed on after the token is waited for: a callback may come before
    // the call returns.
    try {
      await begin();
    } catch (e) {
      this.settleTask(token, null, e);
    }
    return waiting;
  }

  settleTask(token, output, error) {
    const t = this.tasks.get(token);
    if (!t) return false;
    if (!t.resolve) {
      t.early = { output, error };
      return true;
    }
    this.tasks.delete(token);
    for (const c of t.cancel ?? []) c();
    t.stopBeat?.();
    this.clock.touch();
    if (error) t.reject(error);
    else t.resolve(output);
    return true;
  }

  sendTaskSuccess(token, output) {
    if (!this.settleTask(token, JSON.parse(output ?? '{}'), null)) throw taskGone(token);
    return {};
  }

  sendTaskFailure(token, error, cause) {
    if (!this.settleTask(token, null, statesError(error ?? 'States.TaskFailed', cause ?? ''))) throw taskGone(token);
    return {};
  }

  sendTaskHeartbeat(token) {
    const t = this.tasks.get(token);
    if (!t) throw taskGone(token);
    t.beat?.();
    return {};
  }

  async childSync(p) {
    const { executionArn: arn } = this.start(p.StateMachineArn, p.Name, p.Input ?? {});
    const d = await this.wait(arn);
    if (d.status !== 'SUCCEEDED') {
      throw statesError('States.TaskFailed', JSON.stringify({ ExecutionArn: arn, Status: d.status, Error: d.error, Cause: d.cause }));
    }
    return {
      ExecutionArn: arn,
      StateMachineArn: d.stateMachineArn,
      Name: d.name,
      Status: d.status,
      StartDate: d.startDate,
      StopDate: d.stopDate,
      Input: p.Input ?? {},
      InputDetails: { Included: true },
      Output: JSON.parse(d.output),
      OutputDetails: { Included: true },
    };
  }

  // ------------------------------------------------------------------ HTTP

  /**
   * Serve the Step Functions JSON API on 127.0.0.1:`port` (0: any), and
   * `extraOps` ({name: request => answer}), a caller's own calls.
   */
  listen(port = 0, extraOps = {}) {
    const ops = {
      ...extraOps,
      StartExecution: (r) => this.start(r.stateMachineArn, r.name ?? `exec-${++this.tokenSeq}`, JSON.parse(r.input ?? '{}')),
      DescribeExecution: (r) => this.describe(r.executionArn),
      StopExecution: (r) => this.stop(r.executionArn, r.error, r.cause),
      ListExecutions: (r) => ({ executions: this.list(r.stateMachineArn, r.statusFilter) }),
      SendTaskSuccess: (r) => this.sendTaskSuccess(r.taskToken, r.output),
      SendTaskFailure: (r) => this.sendTaskFailure(r.taskToken, r.error, r.cause),
      SendTaskHeartbeat: (r) => this.sendTaskHeartbeat(r.taskToken),
    };
    this.server = http.createServer((req, res) => {
      this.clock.busy();
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const op = (req.headers['x-amz-target'] ?? '').split('.').pop();
        let status = 200;
        let out;
        try {
          if (!ops[op]) throw Object.assign(statesError('UnknownOperationException', `${op} is not served`), { status: 400 });
          out = ops[op](JSON.parse(body || '{}'));
        } catch (e) {
          status = e.status ?? 500;
          out = { __type: e.name, message: e.message };
        }
        const data = JSON.stringify(out);
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'content-length': Buffer.byteLength(data) });
        res.end(data);
        this.clock.idle();
      });
    });
    return new Promise((resolve) => this.server.listen(port, '127.0.0.1', () => resolve(this.server.address().port)));
  }

  close() {
    this.server?.close();
  }
}

function taskGone(token) {
  return Object.assign(statesError('TaskDoesNotExist', `no task waits for token …${token.slice(-8)}`), { status: 400 });
}

/** The token in a task's payload: any string value that is a live token. */
function findToken(v, tasks) {
  if (typeof v === 'string') return tasks.has(v) ? v : undefined;
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) {
      const t = findToken(x, tasks);
      if (t) return t;
    }
  }
  return undefined;
}

/** A definition's text with every `${Name}` replaced by `subs[Name]`. */
export function substitute(text, subs) {
  return JSON.parse(text.replace(/\$\{(\w+)\}/g, (m, name) => {
    if (!(name in subs)) throw new Error(`no substitution for ${m}`);
    return String(subs[name]);
  }));
}

/** The Lambda ARN of function `name`. */
export const functionArn = (name) => `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`;

/** The three state machines, substituted the way the template does. */
export function ebfleetMachines(readText, settings = {}) {
  const subs = {
    MapConcurrency: settings.mapConcurrency ?? 4,
    PlatformStateMachineArn: stateMachineArn('ebfleet-platform'),
  };
  for (const f of ['Plan', 'Capacity', 'Schedule', 'Dispatch', 'Record', 'Release']) {
    subs[`${f}FunctionArn`] = functionArn(f.toLowerCase());
  }
  return {
    'ebfleet-pipeline': substitute(readText('pipeline.asl.json'), subs),
    'ebfleet-platform': substitute(readText('platform.asl.json'), subs),
    'ebfleet-unit': substitute(readText('unit.asl.json'), subs),
  };
}
