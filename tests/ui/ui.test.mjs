// The web page, end to end: a real mutant-server (the debug build) on a
// fresh database of the real ClickHouse, seeded through the public API, and
// the page driven in Debian's headless Chromium through playwright-core.
// Screenshots of every view go to .build/ui-screenshots/.
//
// It fails, never skips: no ClickHouse, no server binary, no browser are
// all errors. Run by scripts/test.sh; alone: `node tests/ui/ui.test.mjs`
// with MUTANT_CLICKHOUSE_URL set and `cargo build -p mutant-server` done.

import { spawn } from 'node:child_process';
import { mkdirSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const screenshots = path.join(root, '.build', 'ui-screenshots');
const clickhouseUrl = process.env.MUTANT_CLICKHOUSE_URL || 'http://127.0.0.1:18123';
const serverBinary = process.env.MUTANT_SERVER_BIN || path.join(root, 'target', 'debug', 'mutant-server');
const chromiumPath = process.env.MUTANT_CHROMIUM || '/usr/bin/chromium';
const database = `mutant_ui_test_${process.pid}`;
const TOKEN = 'ui-test-token';

const N_CLASSES = 10;
const PER_CLASS = 300;
const DIMENSION = 16;
const N_RECORDS = N_CLASSES * PER_CLASS;
const N_DUPLICATES = 6;

const servers = [];
let browser = null;
/** The page of the current step, photographed when a step fails. */
let currentPage = null;
const pageErrors = [];

function fail(message) {
  throw new Error(message);
}

function check(condition, message) {
  if (!condition) fail(message);
}

async function step(name, work) {
  const started = Date.now();
  process.stdout.write(`ui: ${name} ... `);
  await work();
  process.stdout.write(`ok (${Date.now() - started} ms)\n`);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function clickhouse(query) {
  const response = await fetch(`${clickhouseUrl}/?query=${encodeURIComponent(query)}`, { method: 'POST' });
  const text = await response.text();
  if (!response.ok) fail(`ClickHouse refused ${query}: ${text}`);
  return text;
}

async function startServer(extraEnv = {}) {
  check(existsSync(serverBinary), `no server binary at ${serverBinary}; run cargo build -p mutant-server first`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let stderr = '';
  const child = spawn(serverBinary, [], {
    env: {
      ...process.env,
      MUTANT_LISTEN: `127.0.0.1:${port}`,
      MUTANT_CLICKHOUSE_URL: clickhouseUrl,
      MUTANT_DATABASE: database,
      MUTANT_API_TOKEN: '',
      RUST_LOG: 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  servers.push(child);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) fail(`mutant-server exited with ${child.exitCode}: ${stderr}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) return { base, child };
    } catch (_) {
      // Not listening yet.
    }
    if (Date.now() > deadline) fail(`mutant-server did not answer /healthz within 60 s: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function call(base, route, { method = 'GET', body, token } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${base}${route}`, { method, headers, body: body && JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) fail(`${method} ${route} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A seeded generator (mulberry32), so every run writes the same data. */
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

function digitPreview(digit) {
  const hue = digit * 36;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="hsl(${hue},60%,85%)"/><text x="32" y="46" font-size="40" text-anchor="middle" font-family="sans-serif">${digit}</text></svg>`;
  return `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`;
}

/** Ten well separated classes in 16 dimensions; 4% of labels wrong; a few exact copies. */
async function seed(base) {
  const random = generator(7);
  const centres = Array.from({ length: N_CLASSES }, () => Array.from({ length: DIMENSION }, () => (random() - 0.5) * 12));
  await call(base, '/v1/datasets', { method: 'POST', body: { name: 'digits', dimension: DIMENSION, metadata: { split: 'train' } } });
  await call(base, '/v1/datasets', { method: 'POST', body: { name: 'production', dimension: DIMENSION, metric: 'l2' } });
  const records = [];
  const wrongLabels = [];
  for (let index = 0; index < N_RECORDS; index += 1) {
    const digit = index % N_CLASSES;
    const vector = centres[digit].map((value) => value + (random() - 0.5) * 2);
    let label = String(digit);
    if (random() < 0.04) {
      label = String((digit + 1 + Math.floor(random() * (N_CLASSES - 1))) % N_CLASSES);
      wrongLabels.push(`img-${index}`);
    }
    records.push({ id: `img-${index}`, vector, label, prediction: String(digit), uri: digitPreview(digit), metadata: { index } });
  }
  for (let copy = 0; copy < N_DUPLICATES; copy += 1) {
    const original = records[copy * 37];
    records.push({ ...original, id: `copy-of-${original.id}`, metadata: { copy: true } });
  }
  for (let start = 0; start < records.length; start += 1000) {
    await call(base, '/v1/datasets/digits/records', { method: 'POST', body: { records: records.slice(start, start + 1000) } });
  }
  const production = Array.from({ length: 400 }, (_, index) => ({
    id: `prod-${index}`,
    vector: centres[index % 3].map((value) => value + 1.5 + (random() - 0.5) * 2),
    prediction: String(index % 3),
  }));
  await call(base, '/v1/datasets/production/records', { method: 'POST', body: { records: production } });
  return { nDigits: records.length, wrongLabels };
}

async function launchBrowser() {
  check(existsSync(chromiumPath), `no Chromium at ${chromiumPath}; scripts/test.sh installs Debian's chromium`);
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox',
      '--enable-unsafe-swiftshader',
      '--use-angle=swiftshader',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(screenshots, `${name}.png`) });
}

/** The screen position (page pixels) of the map's point `index`. */
async function pointOnScreen(page, index) {
  return page.evaluate((pointIndex) => {
    const { scatterplot } = globalThis.mutantMap;
    const [x, y] = scatterplot.getScreenPosition(pointIndex);
    const bounds = scatterplot.get('canvas').getBoundingClientRect();
    return { x: bounds.left + x, y: bounds.top + y };
  }, index);
}

async function main() {
  mkdirSync(screenshots, { recursive: true });
  try {
    await clickhouse('SELECT 1');
  } catch (error) {
    fail(`no ClickHouse answers at ${clickhouseUrl} (${error.message}); start one with scripts/clickhouse.sh start`);
  }
  await clickhouse(`DROP DATABASE IF EXISTS ${database}`);
  const { base } = await startServer();
  let seeded;
  await step('seed two datasets through the API', async () => {
    seeded = await seed(base);
  });
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  currentPage = page;
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });

  await step('the datasets list shows records, dimension, metric, classes and last write', async () => {
    await page.goto(`${base}/ui/`);
    const row = page.locator('#datasets tr[data-dataset="digits"]');
    await row.locator('td:nth-child(2)', { hasText: seeded.nDigits.toLocaleString('en') }).waitFor({ timeout: 30_000 });
    const cells = await row.locator('td').allTextContents();
    check(cells[2] === String(DIMENSION) && cells[3] === 'l2', `dimension and metric cells: ${cells}`);
    check(cells[4].startsWith(`${N_CLASSES}: `), `label classes cell: ${cells[4]}`);
    check(/ago/.test(cells[5]), `last write cell: ${cells[5]}`);
    await page.locator('#datasets tr[data-dataset="production"] td:nth-child(2)', { hasText: '400' }).waitFor();
    await shot(page, '01-datasets');
  });

  let pointsDrawn = 0;
  await step('the map draws every record and says how many in data-points', async () => {
    await page.click('#datasets a:text("digits")');
    await page.waitForSelector('#map[data-points]', { timeout: 120_000 });
    pointsDrawn = Number(await page.getAttribute('#map', 'data-points'));
    check(pointsDrawn === seeded.nDigits, `the map drew ${pointsDrawn} points, the dataset has ${seeded.nDigits}`);
    check(page.url().endsWith('/ui/datasets/digits'), `the map's address: ${page.url()}`);
    const legend = await page.locator('#legend [data-legend]').count();
    check(legend === N_CLASSES, `the label legend has ${legend} entries`);
    await page.waitForTimeout(300);
    await shot(page, '02-map-by-label');
  });

  let clickedId = null;
  await step('hovering a point shows its id, label and prediction', async () => {
    // A point in the middle of its cluster: the first one whose screen
    // position hovers back to itself.
    for (let index = 0; index < 40 && !clickedId; index += 1) {
      const position = await pointOnScreen(page, index * 53);
      await page.mouse.move(position.x - 30, position.y - 30);
      await page.mouse.move(position.x, position.y, { steps: 4 });
      try {
        await page.waitForSelector('#tooltip:not([hidden])', { timeout: 1500 });
      } catch (_) {
        continue;
      }
      const text = await page.textContent('#tooltip');
      check(/label: \d/.test(text) && /prediction: \d/.test(text), `tooltip: ${text}`);
      clickedId = await page.getAttribute('#tooltip', 'data-id');
    }
    check(clickedId, 'no point showed a tooltip when hovered');
    await shot(page, '03-map-hover');
  });

  await step('clicking a point shows the record, its preview and its neighbours, highlighted', async () => {
    const box = await page.locator('#tooltip').boundingBox();
    check(box, 'the tooltip vanished before the click');
    const mouse = await page.evaluate(() => {
      const tooltip = document.getElementById('tooltip');
      const map = document.getElementById('map').getBoundingClientRect();
      return { x: map.left + parseFloat(tooltip.style.left) - 14, y: map.top + parseFloat(tooltip.style.top) - 14 };
    });
    await page.mouse.click(mouse.x, mouse.y);
    await page.waitForSelector('#record[data-neighbours]', { timeout: 30_000 });
    const shownId = await page.getAttribute('#record', 'data-id');
    check(shownId === clickedId, `clicked ${clickedId}, the record card shows ${shownId}`);
    const neighbours = await page.locator('#neighbours li').count();
    check(neighbours === 10, `${neighbours} neighbours listed`);
    check(await page.locator('#record img.preview').count() === 1, 'no image preview for a data: uri');
    const selected = await page.evaluate(() => globalThis.mutantMap.scatterplot.get('selectedPoints').length);
    check(selected === neighbours + 1, `${selected} points highlighted for 1 record and ${neighbours} neighbours`);
    await shot(page, '04-map-record-and-neighbours');
  });

  await step('a box selection lists the records in it', async () => {
    await page.click('button[data-mode="box"]');
    const map = await page.locator('#map').boundingBox();
    const from = { x: map.x + map.width * 0.25, y: map.y + map.height * 0.25 };
    const to = { x: map.x + map.width * 0.75, y: map.y + map.height * 0.75 };
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    await page.mouse.move(to.x, to.y, { steps: 12 });
    await page.mouse.up();
    await page.waitForSelector('#selection[data-count]', { timeout: 10_000 });
    const count = Number(await page.getAttribute('#selection', 'data-count'));
    const listed = await page.locator('#selection-table tbody tr').count();
    check(count > 1 && listed === Math.min(count, 500), `selection of ${count}, ${listed} rows listed`);
    await shot(page, '05-map-box-selection');
    await page.click('button[data-mode="pan"]');
  });

  let layoutId = null;
  await step('a layout started from the form shows progress and reaches done', async () => {
    await page.selectOption('#analysis-kind', 'projection');
    await page.selectOption('#param-method', 'layout');
    await page.click('#analysis-start');
    await page.waitForSelector('#analysis-message a', { timeout: 10_000 });
    const href = await page.getAttribute('#analysis-message a', 'href');
    layoutId = href.split('/').pop();
    const row = page.locator(`#analyses-table tr[data-analysis="${layoutId}"]`);
    await row.waitFor({ timeout: 10_000 });
    const seen = new Set();
    const progressValues = [];
    const startedAt = Date.now();
    const deadline = startedAt + 180_000;
    for (;;) {
      const status = await row.getAttribute('data-status');
      seen.add(status);
      progressValues.push(Number(await row.locator('progress').getAttribute('value')));
      if (status === 'running' && !seen.has('shot')) {
        seen.add('shot');
        await shot(page, '06-analysis-running');
      }
      if (status === 'done') break;
      check(!['failed', 'cancelled'].includes(status), `the layout ended ${status}`);
      check(Date.now() < deadline, `the layout is still ${status} after 180 s`);
      await page.waitForTimeout(150);
    }
    check(seen.has('running') || seen.has('queued'), `the row never showed the analysis in progress: ${[...seen]}`);
    // The page refreshes a running analysis every 700 ms, so how many
    // partial values show depends on the machine's speed (an idle one may
    // finish a small layout between two refreshes): the bar must be there
    // with a number while the analysis runs, and full once it is done.
    const took = Date.now() - startedAt;
    check(
      progressValues.every((value) => Number.isFinite(value) && value >= 0 && value <= 1),
      `progress bar values out of range: ${progressValues}`,
    );
    check(progressValues[progressValues.length - 1] === 1, `the done layout's bar is not full: ${progressValues}`);
    console.log(`ui: the layout took ${took} ms; partial progress shown: ${progressValues.some((value) => value > 0 && value < 1)}`);
    check(progressValues.at(-1) === 1, 'a done analysis shows a full bar');
  });

  await step('the new layout is drawn with every point', async () => {
    await page.selectOption('#projection', layoutId);
    await page.waitForSelector(`#map[data-projection="${layoutId}"][data-points]`, { timeout: 30_000 });
    check(Number(await page.getAttribute('#map', 'data-points')) === seeded.nDigits, 'the layout drew another number of points');
    await page.waitForTimeout(300);
    await shot(page, '07-map-layout-by-label');
  });

  let mislabelId = null;
  await step('mislabel started from the form; the map coloured by its score and verdict', async () => {
    await page.selectOption('#analysis-kind', 'mislabel');
    await page.click('#analysis-start');
    await page.waitForSelector('#analysis-message a', { timeout: 10_000 });
    mislabelId = (await page.getAttribute('#analysis-message a', 'href')).split('/').pop();
    await page.waitForSelector(`#analyses-table tr[data-analysis="${mislabelId}"][data-status="done"]`, { timeout: 120_000 });
    await page.selectOption('#colour-by', `score:${mislabelId}`);
    await page.waitForSelector('#legend .gradient', { timeout: 30_000 });
    await page.waitForTimeout(300);
    await shot(page, '08-map-by-mislabel-score');
    await page.selectOption('#colour-by', `verdict:${mislabelId}`);
    await page.waitForSelector('#legend [data-legend="flagged"]', { timeout: 30_000 });
    await page.waitForTimeout(300);
    await shot(page, '09-map-by-mislabel-verdict');
  });

  await step('the results table ranks with evidence in words and filters to flagged rows', async () => {
    await page.goto(`${base}/ui/analyses/${mislabelId}`);
    await page.waitForSelector('#results-table tbody tr', { timeout: 30_000 });
    const evidence = await page.locator('#results-table tbody tr:first-child td:nth-child(5)').textContent();
    check(/^labelled \d, its neighbours say \d/.test(evidence), `top row's evidence: ${evidence}`);
    const topIds = await page.locator('#results-table tbody tr td:nth-child(2)').allTextContents();
    const caught = topIds.slice(0, 20).filter((id) => seeded.wrongLabels.includes(id)).length;
    check(caught >= 15, `only ${caught} of the top 20 are labels the test made wrong`);
    await shot(page, '10-results');
    await page.waitForSelector('#results[data-flagged-only="false"]');
    const allRows = Number(await page.getAttribute('#results', 'data-total'));
    const before = await page.locator('#results-table tbody tr').count();
    await page.check('#flagged-only');
    await page.waitForSelector('#results[data-flagged-only="true"]', { timeout: 15_000 });
    const flaggedRows = Number(await page.getAttribute('#results', 'data-total'));
    check(flaggedRows > 0 && flaggedRows < allRows, `${flaggedRows} flagged rows of ${allRows}`);
    const shown = await page.locator('#results-table tbody tr').evaluateAll((rows) => rows.map((row) => row.dataset.flagged));
    check(shown.length === Math.min(flaggedRows, before) && shown.every((flag) => flag === 'true'),
      `the filtered table shows ${shown.length} rows, flags ${[...new Set(shown)]}`);
    await shot(page, '11-results-flagged-only');
  });

  await step('a result links to its record on the map', async () => {
    const firstLink = page.locator('#results-table tbody tr:first-child td:nth-child(2) a');
    const id = await firstLink.textContent();
    await firstLink.click();
    await page.waitForSelector(`#record[data-id="${id}"][data-neighbours]`, { timeout: 60_000 });
    check(page.url().includes('/ui/datasets/'), `the link went to ${page.url()}`);
    await page.waitForTimeout(300);
    await shot(page, '12-map-from-result');
  });

  await step('near-duplicate pairs are shown side by side', async () => {
    const started = await call(base, '/v1/analyses', { method: 'POST', body: { kind: 'near_duplicates', target: 'digits' } });
    await page.goto(`${base}/ui/analyses/${started.id}`);
    await page.waitForSelector('#pairs .pair', { timeout: 60_000 });
    const exact = await page.locator('#pairs .pair:has-text("exact copy")').count();
    check(exact >= N_DUPLICATES, `${exact} exact pairs shown, ${N_DUPLICATES} were written`);
    check(await page.locator('#pairs .pair').first().locator('img.preview').count() === 2, 'a pair lacks its two previews');
    await shot(page, '13-near-duplicate-pairs');
  });

  await step('every analysis is listed with its status, progress and datasets', async () => {
    await page.click('header a[href="/ui/analyses"]');
    await page.waitForSelector('#all-analyses tbody tr[data-analysis]', { timeout: 10_000 });
    const kinds = await page.locator('#all-analyses tbody tr').evaluateAll((rows) => rows.map((row) => row.dataset.kind));
    for (const kind of ['projection', 'mislabel', 'near_duplicates']) check(kinds.includes(kind), `no ${kind} in ${kinds}`);
    check(await page.locator('#all-analyses tbody tr a:text("digits")').count() === kinds.length, 'a row lacks its target');
    await shot(page, '14-all-analyses');
  });

  check(pageErrors.length === 0, `the page logged errors: ${pageErrors.join(' | ')}`);

  await step('with MUTANT_API_TOKEN the page asks for the token once and keeps it for the tab', async () => {
    const guarded = await startServer({ MUTANT_API_TOKEN: TOKEN });
    const tab = await context.newPage();
    const page = await tab.goto(`${guarded.base}/ui/datasets/digits`);
    check(page.ok(), 'the page itself needs no token');
    await tab.waitForSelector('#token-dialog[open]', { timeout: 10_000 });
    await tab.fill('#token-input', 'wrong');
    await tab.click('#token-form button');
    await tab.waitForSelector('#token-dialog[open] #token-error:not([hidden])', { timeout: 10_000 });
    await shot(tab, '15-token-asked');
    await tab.fill('#token-input', TOKEN);
    await tab.click('#token-form button');
    await tab.waitForSelector('#map[data-points]', { timeout: 60_000 });
    await tab.goto(`${guarded.base}/ui/`);
    await tab.locator('#datasets tr[data-dataset="digits"] td:nth-child(2)', { hasText: seeded.nDigits.toLocaleString('en') }).waitFor({ timeout: 30_000 });
    check(!(await tab.locator('#token-dialog[open]').count()), 'the token was asked for twice');
    const unauthorised = await fetch(`${guarded.base}/v1/datasets`);
    check(unauthorised.status === 401, 'the API answered without a token');
    await tab.close();
  });
}

let exitCode = 0;
try {
  await main();
  console.log(`ui: all passed; screenshots in ${path.relative(root, screenshots)}/`);
} catch (error) {
  exitCode = 1;
  console.error(`\nui: FAILED: ${error.stack || error}`);
  if (pageErrors.length) console.error(`ui: the page logged: ${pageErrors.join(' | ')}`);
  if (currentPage) {
    await currentPage.screenshot({ path: path.join(screenshots, 'failure.png') }).catch(() => {});
    console.error(`ui: the page at the failure: ${path.relative(root, path.join(screenshots, 'failure.png'))}`);
  }
} finally {
  if (browser) await browser.close().catch(() => {});
  for (const server of servers) server.kill('SIGTERM');
  try {
    await clickhouse(`DROP DATABASE IF EXISTS ${database}`);
  } catch (_) {
    // ClickHouse may be what failed.
  }
}
process.exit(exitCode);
