// What the scale benchmark (and the large end-to-end scenario) play of the
// world, each through the interface the real thing has, on the local Step
// Functions service's virtual clock:
//
// - SimulatedNodes: SSM as the Lambdas see it. SendCommand runs the step
//   on a simulated node: it beats on the step's task while it "runs" for
//   its modelled time, writes what the real agent would that others read
//   (the unit's manifest, from the unit file in the bucket), then
//   completes the task. A node is online in SSM (DescribeInstanceInformation)
//   a boot time after it was first asked about. Anything else goes to moto.
// - PoolMeter: Auto Scaling as the Lambdas see it: every call goes to
//   moto (which launches instances at once), and the pool's size over
//   virtual time is counted from the calls: node seconds, most nodes,
//   instances launched.

import http from 'node:http';
import { randomUUID, createHash } from 'node:crypto';

/** The modelled build time of `module` (`Name/version`). */
export function estimate(model, module) {
  if (model.by_module?.[module] !== undefined) return model.by_module[module];
  const name = module.split('/')[0];
  return model.by_name?.[name] ?? model.default_s;
}

/** Forward a request to moto unchanged; its answer. */
async function forward(moto, req, body) {
  const headers = { ...req.headers };
  delete headers.host;
  delete headers['content-length'];
  const r = await fetch(moto + req.url, { method: req.method, headers, body: body.length ? body : undefined });
  return { status: r.status, type: r.headers.get('content-type') ?? 'application/xml', data: Buffer.from(await r.arrayBuffer()) };
}

function reply(res, status, type, data) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

function serve(handler, port = 0) {
  const server = http.createServer(async (req, res) => {
    try {
      await handler(req, res, await readBody(req));
    } catch (e) {
      reply(res, 500, 'application/json', JSON.stringify({ __type: 'InternalFailure', message: String(e.stack ?? e) }));
    }
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({ server, port: server.address().port })));
}

export class SimulatedNodes {
  /**
   * `svc`: the LocalStepFunctions; `s3`: an @aws-sdk/client-s3 client of
   * moto; `model`: the durations the builds take; `bootS`, `stepS`.
   */
  constructor({ svc, moto, s3, sdk, bucket, model, bootS = 240, stepS = { sync: 15, tar: 5, upload: 10 }, heartbeatS = 300 }) {
    Object.assign(this, { svc, moto, s3, sdk, bucket, model, bootS, stepS, heartbeatS });
    this.clock = svc.clock;
    this.firstSeen = new Map();
    this.units = new Map(); // unit file key -> {module, sha}
    this.commands = 0;
    this.builds = new Map(); // module -> times built
  }

  async listen() {
    const { server, port } = await serve((req, res, body) => this.handle(req, res, body));
    this.server = server;
    return port;
  }

  close() {
    this.server?.close();
  }

  async handle(req, res, body) {
    const op = (req.headers['x-amz-target'] ?? '').split('.').pop();
    if (op === 'SendCommand') return reply(res, 200, 'application/x-amz-json-1.1', JSON.stringify(this.send(JSON.parse(body))));
    if (op === 'DescribeInstanceInformation') {
      return reply(res, 200, 'application/x-amz-json-1.1', JSON.stringify(this.information(JSON.parse(body))));
    }
    const r = await forward(this.moto, req, body);
    reply(res, r.status, r.type, r.data);
  }

  information(q) {
    const ids = (q.Filters ?? []).filter((f) => f.Key === 'InstanceIds').flatMap((f) => f.Values);
    const now = this.clock.now();
    const online = [];
    for (const id of ids) {
      if (!this.firstSeen.has(id)) {
        this.firstSeen.set(id, now);
        // The node comes online then: wake the clock for it.
        this.clock.after(this.bootS, () => {});
      }
      if (now - this.firstSeen.get(id) >= this.bootS) {
        online.push({ InstanceId: id, PingStatus: 'Online', PlatformType: 'Linux', ResourceType: 'EC2Instance', AgentVersion: '3.3.2746.0' });
      }
    }
    return { InstanceInformationList: online };
  }

  send(q) {
    const p = Object.fromEntries(Object.entries(q.Parameters ?? {}).map(([k, v]) => [k, v[0]]));
    const commandId = randomUUID();
    this.commands++;
    const started = this.clock.now();
    const run = async () => {
      const seconds = p.step === 'build' ? estimate(this.model, (await this.unit(p.batchKey)).module) : this.stepS[p.step];
      this.clock.busy();
      try {
        const beats = [];
        for (let t = this.heartbeatS; t < seconds; t += this.heartbeatS) {
          beats.push(this.clock.after(t, () => {
            try {
              this.svc.sendTaskHeartbeat(p.taskToken);
            } catch {
              // The task ended: nothing to beat on.
            }
          }));
        }
        this.clock.after(seconds, () => this.finish(p, started, beats).catch((e) => console.error(`simulated node: ${e.stack ?? e}`)));
      } finally {
        this.clock.idle();
      }
    };
    this.clock.busy();
    run().catch((e) => console.error(`simulated node: ${e.stack ?? e}`)).finally(() => this.clock.idle());
    return { Command: { CommandId: commandId, DocumentName: q.DocumentName, Status: 'Pending', InstanceIds: q.InstanceIds } };
  }

  /** The unit file a step runs for: its one module. */
  async unit(key) {
    if (!this.units.has(key)) {
      const o = await this.s3.send(new this.sdk.GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const f = JSON.parse(await o.Body.transformToString());
      const b = f.builds[0];
      this.units.set(key, { module: b.module, sha: b.easyconfig_sha256, platform: f.platform, execution: f.execution, batch: f.batch, archspec: f.archspec, node: f.node });
    }
    return this.units.get(key);
  }

  async finish(p, started, beats) {
    this.clock.busy();
    try {
      for (const stop of beats) stop();
      if (p.step === 'upload') await this.manifest(p, started);
      try {
        this.svc.sendTaskSuccess(p.taskToken, JSON.stringify({ step: p.step, result: {} }));
      } catch {
        // The task ended meanwhile.
      }
    } finally {
      this.clock.idle();
    }
  }

  /** What the node's upload stages: the module built (a tarball of its
   * name, its module file) and the manifest, under the unit's staging
   * prefix as the unit file names it (read again: a unit tried again
   * names another node). */
  async manifest(p, started) {
    this.units.delete(p.batchKey);
    const u = await this.unit(p.batchKey);
    const staging = `staging/${u.platform}/${u.execution}/${u.batch}/${u.node}/`;
    this.builds.set(u.module, (this.builds.get(u.module) ?? 0) + 1);
    const [name, version] = u.module.split('/');
    const now = Math.floor(this.clock.now());
    const m = {
      format: 1,
      execution: u.execution,
      platform: u.platform,
      batch: u.batch,
      instance_type: 'c7a.8xlarge',
      archspec: u.archspec,
      eb_version: '5.4.1',
      started: Math.floor(started),
      finished: now,
      modules: [{
        module: u.module,
        easyconfig_sha256: u.sha,
        outcome: {
          status: 'built',
          tarball: { key: `${staging}software/${name}/${version}.tar.zst`, size: Buffer.byteLength(u.module), sha256: createHash('sha256').update(u.module).digest('hex') },
          module_file_key: `${staging}modules/all/${name}/${version}.lua`,
          duration_s: estimate(this.model, u.module),
        },
      }],
    };
    const put = (Key, Body, ContentType) => this.s3.send(new this.sdk.PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentType }));
    await put(m.modules[0].outcome.tarball.key, u.module, 'application/zstd');
    await put(m.modules[0].outcome.module_file_key, '-- module file', 'text/x-lua');
    await put(`${staging}manifest.json`, JSON.stringify(m), 'application/json');
  }
}

export class PoolMeter {
  constructor({ clock, moto }) {
    Object.assign(this, { clock, moto });
    this.pools = new Map(); // name -> {size, since, seconds, max, launched}
    this.groupOf = new Map(); // instance id -> group name, from the groups described
  }

  async listen() {
    const { server, port } = await serve((req, res, body) => this.handle(req, res, body));
    this.server = server;
    return port;
  }

  close() {
    this.server?.close();
  }

  pool(name) {
    if (!this.pools.has(name)) this.pools.set(name, { size: 0, since: this.clock.now(), seconds: 0, max: 0, launched: 0 });
    return this.pools.get(name);
  }

  resize(name, size) {
    const p = this.pool(name);
    const now = this.clock.now();
    p.seconds += p.size * (now - p.since);
    p.since = now;
    if (size > p.size) p.launched += size - p.size;
    p.size = Math.max(0, size);
    p.max = Math.max(p.max, p.size);
  }

  async handle(req, res, body) {
    const form = new URLSearchParams(body.toString());
    const r = await forward(this.moto, req, body);
    if (r.status === 200) {
      const name = form.get('AutoScalingGroupName');
      switch (form.get('Action')) {
        case 'SetDesiredCapacity':
          this.resize(name, Number(form.get('DesiredCapacity')));
          break;
        case 'TerminateInstanceInAutoScalingGroup': {
          const group = this.groupOf.get(form.get('InstanceId'));
          if (group && form.get('ShouldDecrementDesiredCapacity') === 'true') this.resize(group, this.pool(group).size - 1);
          break;
        }
        case 'DescribeAutoScalingGroups': {
          // Each instance follows its group's name in the answer.
          let group;
          for (const m of r.data.toString().matchAll(/<(AutoScalingGroupName|InstanceId)>([^<]*)</g)) {
            if (m[1] === 'AutoScalingGroupName') group = m[2];
            else if (group) this.groupOf.set(m[2], group);
          }
          break;
        }
        case 'DeleteAutoScalingGroup':
          this.resize(name, 0);
          break;
        default:
      }
    }
    reply(res, r.status, r.type, r.data);
  }

  /** Figures of a pool so far. */
  figures(name) {
    const p = this.pool(name);
    return { node_seconds: Math.round(p.seconds + p.size * (this.clock.now() - p.since)), nodes_max: p.max, instances_launched: p.launched };
  }
}
