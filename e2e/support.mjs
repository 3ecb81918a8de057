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

export async function signIn(username, password) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${BASE}/login`);
  await page.fill("#username", username);
  await page.fill("#password", password);
  await Promise.all([page.waitForLoadState("load"), page.click("button[type=submit]")]);
  assert.ok(!page.url().includes("/login"), `${username} signed in`);
  return page;
}
