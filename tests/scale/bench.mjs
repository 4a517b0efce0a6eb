// One run of the pipeline at scale, on a virtual clock: the real state
// machines in the ASL interpreter (tests/sfn/local-sfn.mjs), the real
// Lambda handlers (tests/lambdas, one process), moto for S3, DynamoDB,
// EC2, Auto Scaling and SSM's parameters, and simulated build nodes whose
// steps take modelled time (world.mjs). Nothing waits: a 14-hour build
// takes as long as the calls around it.
//
// node bench.mjs --easyconfigs DIR [--platform P]... [--nodes N]
//                [--durations FILE] [--name RUN] [--json]
// Environment: EBFLEET_MOTO_ENDPOINT (moto), EBFLEET_LAMBDAS_BIN (the
// handlers' binary), EBFLEET_NODE_MODULES (aws-local-stepfunctions and the
// AWS SDK for JavaScript).
//
// Prints per platform what scripts/bench-scale.sh reports; with --json the
// last line is {"platforms": [...]}.

import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { LocalStepFunctions, VirtualClock, ebfleetMachines, stateMachineArn } from '../sfn/local-sfn.mjs';
import { SimulatedNodes, PoolMeter, estimate } from './world.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const need = (v) => process.env[v] ?? (() => { throw new Error(`${v} is not set`); })();
const require = createRequire(path.join(need('EBFLEET_NODE_MODULES'), 'x.js'));
const S3 = require('@aws-sdk/client-s3');
const DDB = require('@aws-sdk/client-dynamodb');
const EC2 = require('@aws-sdk/client-ec2');

function args() {
  const a = { platforms: [], nodes: 32, json: false, durations: path.join(repo, 'crates/ebfleet-scheduler/data/durations.json') };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i];
    if (k === '--easyconfigs') a.easyconfigs = v();
    else if (k === '--platform') a.platforms.push(v());
    else if (k === '--nodes') a.nodes = Number(v());
    else if (k === '--durations') a.durations = v();
    else if (k === '--name') a.name = v();
    else if (k === '--json') a.json = true;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.easyconfigs) throw new Error('--easyconfigs DIR is required');
  if (!a.platforms.length) a.platforms.push('epyc-gen-4');
  a.name ??= `scale-${Date.now()}`;
  return a;
}

function files(dir, root = dir, out = []) {
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) files(p, root, out);
    else if (e.endsWith('.eb')) out.push(path.relative(root, p));
  }
  return out;
}

async function pool(items, n, f) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await f(items[next++]);
  }));
}

/** The longest chain of `seconds` through a build graph's units. */
function criticalPath(graph, seconds) {
  const finish = new Array(graph.modules.length).fill(0);
  let longest = 0;
  graph.modules.forEach((m, i) => {
    if (m.built) return;
    const deps = [...(m.build_deps ?? []), ...(m.runtime_deps ?? [])];
    finish[i] = seconds[i] + Math.max(0, ...deps.map((d) => finish[d]));
    longest = Math.max(longest, finish[i]);
  });
  return longest;
}

async function main() {
  const a = args();
  const moto = need('EBFLEET_MOTO_ENDPOINT');
  const model = JSON.parse(readFileSync(a.durations, 'utf8'));
  const aws = { endpoint: moto, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, forcePathStyle: true };
  const s3 = new S3.S3Client(aws);
  const ddb = new DDB.DynamoDBClient(aws);
  const ec2 = new EC2.EC2Client(aws);
  const log = (m) => process.stderr.write(`bench-scale: ${m}\n`);
  const t0 = Date.now();

  // The stack, as the template makes it.
  const bucket = a.name.toLowerCase();
  await s3.send(new S3.CreateBucketCommand({ Bucket: bucket }));
  await ddb.send(new DDB.CreateTableCommand({
    TableName: bucket,
    AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'sk', AttributeType: 'S' }],
    KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
    BillingMode: 'PAY_PER_REQUEST',
  }));
  // The signing key, through KMS's JSON API (moto tells the service by the
  // credential scope; no KMS client is installed for this alone).
  const kms = async (op, body) => {
    const r = await fetch(moto, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': `TrentService.${op}`,
        authorization: 'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0',
      },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`KMS ${op}: HTTP ${r.status} ${await r.text()}`);
    return r.json();
  };
  const key = await kms('CreateKey', { KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' });
  const subnet = (await ec2.send(new EC2.DescribeSubnetsCommand({ Filters: [{ Name: 'default-for-az', Values: ['true'] }] }))).Subnets[0];
  const sg = await ec2.send(new EC2.CreateSecurityGroupCommand({ GroupName: bucket, Description: 'no inbound', VpcId: subnet.VpcId }));
  const agent = Buffer.from('#!/bin/sh\n# a stand-in: the benchmark\'s nodes are simulated\n');
  for (const arch of ['x86_64', 'aarch64']) {
    await s3.send(new S3.PutObjectCommand({
      Bucket: bucket, Key: `tools/ebfleet-node/${arch}/ebfleet-node`, Body: agent,
      Metadata: { sha256: createHash('sha256').update(agent).digest('hex') },
    }));
  }
  const ecs = files(a.easyconfigs);
  await pool(ecs, 32, (rel) => s3.send(new S3.PutObjectCommand({ Bucket: bucket, Key: `easyconfigs/${rel}`, Body: readFileSync(path.join(a.easyconfigs, rel)) })));
  log(`${ecs.length} easyconfigs in s3://${bucket}/easyconfigs/ (${((Date.now() - t0) / 1000).toFixed(0)} s)`);

  // Step Functions, the nodes, the pools' meter, and the Lambdas.
  const clock = new VirtualClock(Math.floor(Date.now() / 1000));
  let lambdasPort;
  const invoke = async (fn, payload, now) => {
    const r = await fetch(`http://127.0.0.1:${lambdasPort}/2015-03-31/functions/${fn}/invocations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-ebfleet-now': String(Math.floor(now)) },
      body: JSON.stringify(payload),
    });
    const body = await r.json();
    if (r.status !== 200) throw Object.assign(new Error(body.errorMessage), { name: body.errorType ?? 'Lambda.ServiceException' });
    return body;
  };
  const machines = ebfleetMachines((f) => readFileSync(path.join(repo, 'statemachine', f), 'utf8'), { mapConcurrency: 40 });
  // Only what fails is worth a line: a task's error, an execution's end.
  // (a Wait for nodes timing out is the scheduler's clock, not a failure).
  const noteworthy = (m) => /FAILED|ABORTED|: [A-Za-z.]+(Error|Exception|Failed|Invalid|Transient|Timeout|NodeLost)/.test(m) && !/Wait for nodes: States.Timeout/.test(m);
  const svc = new LocalStepFunctions({ machines, invoke, clock, log: (m) => noteworthy(m) && log(m) });
  const sfnPort = await svc.listen();
  const nodes = new SimulatedNodes({ svc, moto, s3, sdk: S3, bucket, model });
  const ssmPort = await nodes.listen();
  const meter = new PoolMeter({ clock, moto });
  const asgPort = await meter.listen();
  const lambdas = spawn(need('EBFLEET_LAMBDAS_BIN'), [], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      AWS_ENDPOINT_URL: moto,
      AWS_ENDPOINT_URL_SFN: `http://127.0.0.1:${sfnPort}`,
      AWS_ENDPOINT_URL_SSM: `http://127.0.0.1:${ssmPort}`,
      AWS_ENDPOINT_URL_AUTO_SCALING: `http://127.0.0.1:${asgPort}`,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      EBFLEET_BUCKET: bucket,
      EBFLEET_TABLE: bucket,
      EBFLEET_STATE_MACHINE_ARN: stateMachineArn('ebfleet-pipeline'),
      EBFLEET_UNIT_STATE_MACHINE_ARN: stateMachineArn('ebfleet-unit'),
      EBFLEET_NODE_ROLE_ID: 'AROASCALEBENCHNODE',
      EBFLEET_SIGNING_KEY: key.KeyMetadata.Arn,
      EBFLEET_SSM_DOCUMENT: 'ebfleet-node-step',
      EBFLEET_INSTANCE_PROFILE_ARN: 'arn:aws:iam::123456789012:instance-profile/ebfleet-node',
      EBFLEET_SECURITY_GROUP_ID: sg.GroupId,
      EBFLEET_SUBNET_IDS: subnet.SubnetId,
      EBFLEET_NODES_PER_PLATFORM: String(a.nodes),
      EBFLEET_MAX_INSTANCES_PER_PLATFORM: String(4 * a.nodes),
    },
  });
  lambdasPort = await new Promise((resolve, reject) => {
    lambdas.stdout.on('data', (d) => {
      const m = String(d).match(/listening (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    lambdas.on('exit', (c) => reject(new Error(`ebfleet-lambdas exited ${c}`)));
  });

  try {
    const t1 = Date.now();
    const started = clock.now();
    // A run names platforms in full (`amzn-2023_epyc-gen-4`); the shipped ones are all amzn-2023.
    const platforms = a.platforms.map((p) => (p.startsWith('amzn-2023_') ? p : `amzn-2023_${p}`));
    const { executionArn } = svc.start(stateMachineArn('ebfleet-pipeline'), a.name, { platforms });
    const progress = setInterval(() => {
      const units = [...svc.executions.values()].filter((x) => x.machine.name === 'ebfleet-unit');
      const done = units.filter((x) => x.status !== 'RUNNING').length;
      log(`${((Date.now() - t1) / 1000).toFixed(0)} s: ${((clock.now() - started) / 3600).toFixed(1)} h simulated, ${done} units ended, ${units.length - done} running`);
    }, 30_000);
    const d = await svc.wait(executionArn);
    clearInterval(progress);
    if (d.status !== 'SUCCEEDED') throw new Error(`run ${d.status}: ${d.error}: ${d.cause}`);
    const output = JSON.parse(d.output);
    const seconds = (Date.now() - t1) / 1000;

    const rows = [];
    const executions = [...svc.executions.values()];
    for (const p of output.platforms) {
      if (p.failed) throw new Error(`platform ${p.platform} failed: ${p.error}: ${p.cause}`);
      if (p.up_to_date) continue;
      const graphKey = `plans/${a.name}/${p.platform}/graph.json`;
      const graph = JSON.parse(await (await s3.send(new S3.GetObjectCommand({ Bucket: bucket, Key: graphKey }))).Body.transformToString());
      const actual = graph.modules.map((m) => (m.built ? 0 : estimate(model, m.module)));
      const units = graph.modules.filter((m) => !m.built).length;
      let built = 0;
      let twice = 0;
      let key;
      do {
        const q = await ddb.send(new DDB.QueryCommand({
          TableName: bucket,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': { S: `PLATFORM#${p.platform}` } },
          ExclusiveStartKey: key,
        }));
        for (const i of q.Items) {
          if (i.status?.S === 'built' && i.execution?.S === a.name) built++;
          if (Number(i.attempts?.N ?? 0) > 1) twice++;
        }
        key = q.LastEvaluatedKey;
      } while (key);
      const mine = executions.filter((x) => x.machine.name === 'ebfleet-platform' && x.input.platform === p.platform);
      const begin = Math.min(...mine.map((x) => x.startDate));
      const end = Math.max(...mine.map((x) => x.stopDate));
      const running = await ec2.send(new EC2.DescribeInstancesCommand({
        Filters: [
          { Name: 'tag:ebfleet:execution', Values: [a.name] },
          { Name: 'tag:ebfleet:platform', Values: [p.platform] },
          { Name: 'instance-state-name', Values: ['pending', 'running'] },
        ],
      }));
      rows.push({
        platform: p.platform,
        modules: units,
        recorded_built: built,
        recorded_twice: twice,
        makespan_s: Math.round(end - begin),
        critical_path_s: criticalPath(graph, actual),
        work_s: actual.reduce((s, x) => s + x, 0),
        ...meter.figures(`ebfleet-${a.name}-${p.platform}`),
        instances_running_at_end: running.Reservations.flatMap((r) => r.Instances).length,
        max_history_events: Math.max(...executions.map((x) => x.events)),
        executions: executions.length,
        wall_s: Math.round(seconds),
      });
    }
    for (const r of rows) {
      const h = (s) => `${(s / 3600).toFixed(1)} h`;
      const bound = Math.max(r.critical_path_s, r.work_s / a.nodes);
      log(`${r.platform}: ${r.modules} modules, built ${r.recorded_built} (twice ${r.recorded_twice}); makespan ${h(r.makespan_s)} `
        + `(critical path ${h(r.critical_path_s)}, work/${a.nodes} ${h(r.work_s / a.nodes)}: x${(r.makespan_s / bound).toFixed(3)}); `
        + `node time ${h(r.node_seconds)} (work ${h(r.work_s)}: x${(r.node_seconds / r.work_s).toFixed(3)}); nodes ${r.nodes_max}, `
        + `launched ${r.instances_launched}, running at the end ${r.instances_running_at_end}; most events in one history `
        + `${r.max_history_events} over ${r.executions} executions; ${r.wall_s} s of wall time`);
    }
    if (a.json) console.log(JSON.stringify({ platforms: rows }));
  } finally {
    lambdas.kill();
    svc.close();
    nodes.close();
    meter.close();
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(`bench-scale: ${e.stack ?? e}`);
  process.exit(1);
});
