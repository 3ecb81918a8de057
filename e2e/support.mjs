// What every browser test shares: the demo server's address, the screenshot folder, Debian's
// chromium launched headless, and signing in as a demo user.
import { before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

export const BASE = process.env.CUVETTE_URL ?? "http://127.0.0.1:8080";
export const SHOTS = process.env.SCREENSHOTS ?? "target/e2e-screenshots";
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});
after(async () => { await browser?.close(); });

// Signs in and returns the page; `options` are the browser context's (for example
// `{ javaScriptEnabled: false }` to see what the server draws by itself).
export async function signIn(username, password, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  await page.goto(`${BASE}/login`);
  await page.fill("#username", username);
  await page.fill("#password", password);
  await Promise.all([page.waitForLoadState("load"), page.click("button[type=submit]")]);
  assert.ok(!page.url().includes("/login"), `${username} signed in`);
  return page;
}

// A JSON API call made by the signed-in page itself (its session cookie and CSRF token), for
// setting up what a test then looks at through the screens.
export async function api(page, method, path, body) {
  return page.evaluate(async ({ method, path, body }) => {
    const csrf = document.querySelector("meta[name=csrf-token]").content;
    const r = await fetch(path, {
      method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, json: await r.json() };
  }, { method, path, body });
}
