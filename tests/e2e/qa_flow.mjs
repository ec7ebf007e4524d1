// threering pages in headless Debian chromium (playwright-core, no browser download).
// Run by tests/ui_browser.rs, which starts the daemon, makes a SIPp call and creates the
// users; this script only drives the browser and exits non-zero on the first failure.
//
// env: BASE (http://127.0.0.1:PORT), CALL_ID, CALLER, RINGS, DURATION_S,
//      QA_USER, AGENT_USER, SUP_USER, PASSWORD, SHOTS (a folder for screenshots)
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`missing env ${k}`);
  return v;
};
const BASE = env('BASE');
const CALL_ID = env('CALL_ID');
const RINGS = env('RINGS');
const DURATION_S = Number(env('DURATION_S'));
const PASSWORD = env('PASSWORD');
const SHOTS = process.env.SHOTS;
const steps = (process.env.STEPS || 'qa,agent,dashboard,wallboard').split(',');

function check(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
}

async function signIn(browser, user) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${BASE}/ui/calls`);
  check(page.url().includes('/login'), `${user}: an unsigned visit is sent to the login page`);
  await page.fill('input[name="name"]', user);
  await page.fill('input[name="password"]', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  check(page.url().includes('/ui/calls'), `${user}: back on the page asked for after signing in (${page.url()})`);
  return { context, page };
}

async function qa(browser) {
  const { context, page } = await signIn(browser, env('QA_USER'));
  await page.fill('input[name="caller"]', env('CALLER'));
  await Promise.all([page.waitForNavigation(), page.click('form.filters button')]);
  const link = page.locator(`a.call-link[href="/ui/calls/${CALL_ID}"]`);
  check((await link.count()) === 1, 'the search finds the SIPp call');
  await Promise.all([page.waitForNavigation(), link.click()]);
  check((await page.textContent('#call-id')).trim() === CALL_ID, 'the call page opens');
  check((await page.textContent('#rings')).trim() === RINGS, `the call page shows ${RINGS} rings`);
  // The audio element loads over the Range endpoint and knows its length.
  const duration = await page.evaluate(async () => {
    const audio = document.getElementById('recording');
    if (audio.readyState < 1) {
      await new Promise((resolve, reject) => {
        audio.addEventListener('loadedmetadata', resolve, { once: true });
        audio.addEventListener('error', () => reject(new Error('audio error ' + (audio.error && audio.error.code))), { once: true });
        setTimeout(() => reject(new Error('no metadata within 10 s')), 10000);
      });
    }
    return audio.duration;
  });
  check(Math.abs(duration - DURATION_S) < 0.6, `the audio element reports ${duration.toFixed(2)} s (recording ${DURATION_S} s)`);
  const lanes = await page.locator('#waveform svg g.lane').evaluateAll((gs) => gs.map((g) => g.dataset.channel));
  check(lanes.join(',') === 'caller,agent', `the waveform shows two channels (${lanes})`);
  check((await page.locator('#timeline svg rect.ring').count()) === Number(RINGS), 'the ring timeline draws each ring burst');
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/call-page.png`, fullPage: true });
  // Score the call on the form.
  for (const key of ['greeting', 'polite', 'no_forbidden', 'restated', 'within_3_min', 'anything_else']) {
    await page.check(`input[name="item.${key}"]`);
  }
  await page.fill('input[name="comment"]', '浏览器测试 browser test');
  await Promise.all([page.waitForNavigation(), page.click('#submit-score')]);
  const totals = await page.locator('#scores tr.score td.total').allTextContents();
  check(totals.length === 1 && totals[0].trim() === '85.0', `the saved score is listed (${totals})`);
  await context.close();
}

async function agentIsRefused(browser) {
  const { context, page } = await signIn(browser, env('AGENT_USER'));
  const response = await page.goto(`${BASE}/ui/calls/${CALL_ID}`);
  check(response.status() === 403, `another agent's call answers 403 (got ${response.status()})`);
  const api = await page.request.get(`${BASE}/api/calls/${CALL_ID}/recording`);
  check(api.status() === 403, `and so does its recording (got ${api.status()})`);
  await context.close();
}

async function dashboard(browser) {
  const { context, page } = await signIn(browser, env('SUP_USER'));
  await page.goto(`${BASE}/ui/dashboard`);
  const cell = await page.locator(`#agents tr[data-agent="${process.env.AGENT_ID || '1001'}"] td.avg-rings`).textContent();
  check(Number(cell) === Number(RINGS), `the dashboard shows the call's ${RINGS} rings for its agent (got ${cell})`);
  check((await page.locator('#rings-chart svg').count()) === 1, 'the rings histogram is drawn');
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/dashboard.png`, fullPage: true });
  await context.close();
}

async function wallboard(browser) {
  const { context, page } = await signIn(browser, env('SUP_USER'));
  await page.goto(`${BASE}/ui/wallboard`);
  // The test starts a call that rings for a while: the ring count must go up live.
  const row = page.locator('#ringing tr.call').first();
  await row.waitFor({ timeout: 15000 });
  const first = Number(await row.locator('td.rings').textContent());
  await page.waitForFunction((n) => {
    const td = document.querySelector('#ringing tr.call td.rings');
    return td && Number(td.textContent) > n;
  }, first, { timeout: 10000 });
  const later = Number(await row.locator('td.rings').textContent());
  check(later > first, `the wallboard's ring count goes up without a reload (${first} → ${later})`);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/wallboard.png`, fullPage: true });
  await context.close();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
});
try {
  if (steps.includes('qa')) await qa(browser);
  if (steps.includes('agent')) await agentIsRefused(browser);
  if (steps.includes('dashboard')) await dashboard(browser);
  if (steps.includes('wallboard')) await wallboard(browser);
} finally {
  await browser.close();
}
