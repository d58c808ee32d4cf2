// Time from opening a map to its first paint, once the projection is
// computed and stored: a release mutant-server on a fresh database, a seeded
// dataset (default 100,000 x 128: 20 Gaussian clusters, 20 labels), its
// default projection (the neighbour layout above 5,000 records), then the
// page opened in headless Chromium `--rounds` times (default 5).
//
// Reported per round: milliseconds from navigation start until the map has
// drawn every point and the next frame was painted (the map's
// data-since-navigation-ms), and how long the points frame took to fetch and
// draw (data-load-ms). Also: the projection's own time on the server, and
// the frame rate while panning (a 2 s drag).
//
// Run by scripts/ui_bench.sh, which builds the release server first.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const argument = (name, fallback) => {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : fallback;
};
const nRecords = Number(argument('--rows', 100_000));
const dimension = Number(argument('--dimension', 128));
const rounds = Number(argument('--rounds', 5));
const clickhouseUrl = process.env.MUTANT_CLICKHOUSE_URL || 'http://127.0.0.1:18123';
const serverBinary = process.env.MUTANT_SERVER_BIN || path.join(root, 'target', 'release', 'mutant-server');
const chromiumPath = process.env.MUTANT_CHROMIUM || '/usr/bin/chromium';
const database = 'mutant_ui_bench';
const N_CLUSTERS = 20;

function fail(message) {
  throw new Error(message);
}

async function clickhouse(query) {
  const response = await fetch(`${clickhouseUrl}/?query=${encodeURIComponent(query)}`, { method: 'POST' });
  if (!response.ok) fail(`ClickHouse refused ${query}: ${await response.text()}`);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function call(base, route, body) {
  const response = await fetch(`${base}${route}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) fail(`${route} answered ${response.status}: ${text}`);
  return JSON.parse(text);
}

function generator(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

let server = null;
let browser = null;
try {
  if (!existsSync(serverBinary)) fail(`no ${serverBinary}; cargo build --release -p mutant-server`);
  await clickhouse(`DROP DATABASE IF EXISTS ${database}`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  server = spawn(serverBinary, [], {
    env: { ...process.env, MUTANT_LISTEN: `127.0.0.1:${port}`, MUTANT_CLICKHOUSE_URL: clickhouseUrl, MUTANT_DATABASE: database, MUTANT_API_TOKEN: '', RUST_LOG: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let attempt = 0; ; attempt += 1) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch (_) {
      if (attempt > 300) fail('the server did not start');
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  const random = generator(42);
  const gaussian = () => {
    let sum = 0;
    for (let index = 0; index < 4; index += 1) sum += random() - 0.5;
    return sum * Math.sqrt(3);
  };
  const centres = Array.from({ length: N_CLUSTERS }, () => Array.from({ length: dimension }, () => (random() - 0.5) * 8));
  await call(base, '/v1/datasets', { name: 'bench', dimension });
  const seedStarted = Date.now();
  for (let start = 0; start < nRecords; start += 5000) {
    const records = [];
    for (let index = start; index < Math.min(nRecords, start + 5000); index += 1) {
      const cluster = index % N_CLUSTERS;
      records.push({
        id: `rec-${index}`,
        vector: centres[cluster].map((value) => Math.fround(value + gaussian())),
        label: `class-${cluster}`,
        prediction: `class-${random() < 0.95 ? cluster : (cluster + 1) % N_CLUSTERS}`,
      });
    }
    await call(base, '/v1/datasets/bench/records', { records });
  }
  console.log(`# first paint of a map: ${nRecords} x ${dimension}, ${N_CLUSTERS} clusters, seeded in ${((Date.now() - seedStarted) / 1000).toFixed(1)} s`);

  const started = await call(base, '/v1/analyses', { kind: 'projection', target: 'bench' });
  let status;
  for (;;) {
    status = await call(base, `/v1/analyses/${started.id}`);
    if (status.status === 'done') break;
    if (['failed', 'cancelled'].includes(status.status)) fail(`the projection ${status.status}: ${status.error}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const results = await call(base, `/v1/analyses/${started.id}/results?limit=1`);
  console.log(`projection: method ${results.summary.method}, ${((status.finished_at_ms - status.started_at_ms) / 1000).toFixed(1)} s on the server (graph and layout)`);

  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const firstPaints = [];
  const loads = [];
  let framesPerSecond = null;
  for (let round = 0; round < rounds; round += 1) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${base}/ui/datasets/bench`);
    await page.waitForSelector('#map[data-points]', { timeout: 120_000 });
    const drawn = Number(await page.getAttribute('#map', 'data-points'));
    if (drawn !== nRecords) fail(`the map drew ${drawn} points of ${nRecords}`);
    firstPaints.push(Number(await page.getAttribute('#map', 'data-since-navigation-ms')));
    loads.push(Number(await page.getAttribute('#map', 'data-load-ms')));
    if (round === rounds - 1) {
      const timings = await page.evaluate(() => performance.getEntriesByType('resource')
        .filter((entry) => entry.name.includes('/v1/') || entry.name.includes('/ui/assets/'))
        .map((entry) => `${new URL(entry.name).pathname.replace(/[0-9a-f-]{36}/, '{id}')} ${Math.round(entry.startTime)}-${Math.round(entry.responseEnd)} ms`));
      console.log(`# requests of the last round (start-end since navigation): ${timings.join('; ')}`);
      await page.screenshot({ path: path.join(root, '.build', 'ui-screenshots', 'bench-100k-map.png') }).catch(() => {});
      const box = await page.locator('#map').boundingBox();
      await page.evaluate(() => {
        globalThis.benchFrames = 0;
        const count = () => { globalThis.benchFrames += 1; if (!globalThis.benchStop) requestAnimationFrame(count); };
        requestAnimationFrame(count);
      });
      const panStarted = Date.now();
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.down();
      for (let step = 0; Date.now() - panStarted < 2000; step += 1) {
        await page.mouse.move(box.x + box.width / 2 + 150 * Math.sin(step / 10), box.y + box.height / 2 + 100 * Math.cos(step / 10));
      }
      await page.mouse.up();
      const frames = await page.evaluate(() => { globalThis.benchStop = true; return globalThis.benchFrames; });
      framesPerSecond = frames / ((Date.now() - panStarted) / 1000);
    }
    await context.close();
  }
  console.log('| measurement | median | all rounds |');
  console.log('| --- | --- | --- |');
  console.log(`| navigation start to first paint of ${nRecords.toLocaleString('en')} points | ${median(firstPaints)} ms | ${firstPaints.join(', ')} ms |`);
  console.log(`| points frame fetched, decoded and drawn | ${median(loads)} ms | ${loads.join(', ')} ms |`);
  console.log(`| frames per second while panning (software WebGL) | ${framesPerSecond.toFixed(1)} | |`);
  console.log(`result first_paint_ms=${median(firstPaints)} load_ms=${median(loads)} pan_fps=${framesPerSecond.toFixed(1)}`);
} catch (error) {
  console.error(`first_paint: FAILED: ${error.stack || error}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) server.kill('SIGTERM');
  await clickhouse(`DROP DATABASE IF EXISTS ${database}`).catch(() => {});
}
