// Quality control at the bench, in the demo lab: this morning potassium level 1 read 3.4 SD
// low on the chemistry analyzer. The technologist sees the lockout, the Levey-Jennings chart
// with the violation marked and named, the patient results held since the last good QC, and
// in the review queue why autoverification held them; after a corrective action and a good
// run the lockout lifts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BASE, SHOTS, signIn } from "./support.mjs";

test("a QC failure locks potassium, shows on the chart and holds the results", async () => {
  const mls = await signIn("mls", "demo-westgard");
  await mls.goto(`${BASE}/qc`);
  const row = mls.locator("tr.qc-row-locked", { has: mls.locator("th", { hasText: /^K$/ }) });
  assert.equal(await row.count(), 1, "potassium is locked on one analyzer");
  assert.match(await row.locator(".qc-chip").innerText(), /LOCKED/, "the lockout is said in text, not colour alone");
  await mls.screenshot({ path: `${SHOTS}/qc-01-overview.png`, fullPage: true });

  // The Levey-Jennings chart of level 1: this morning's point is marked and the rule named.
  await Promise.all([mls.waitForURL(/\/qc\/chart\/\d+/), row.locator("a", { hasText: "Level 1 chart" }).click()]);
  const chart = mls.locator("#lj-chart svg");
  assert.equal(await chart.count(), 1, "the chart is drawn");
  const violation = chart.locator("g.violation[data-rules~='1-3s']");
  assert.ok(await violation.count() >= 1, "the 1-3s point is marked");
  assert.match(await violation.last().textContent(), /1-3s/, "the rule is written beside the point");
  assert.ok(await chart.locator(".lj-sd3").count() >= 2, "±3 SD lines are drawn");
  await mls.screenshot({ path: `${SHOTS}/qc-02-levey-jennings.png`, fullPage: true });

  // The lockout page lists the potassium results since the last good QC.
  await mls.goto(`${BASE}/qc`);
  await Promise.all([mls.waitForURL(/\/qc\/lockout\//), row.locator("a", { hasText: "Lockout" }).click()]);
  const lockoutUrl = mls.url();
  const held = mls.locator("h2", { hasText: "Results to re-run" });
  assert.equal(await held.count(), 1);
  assert.ok(Number(await held.locator(".muted").innerText()) >= 1, "today's potassium results are listed");
  await mls.screenshot({ path: `${SHOTS}/qc-03-lockout.png`, fullPage: true });

  // The review queue says why autoverification held potassium.
  await mls.goto(`${BASE}/review`);
  const trace = mls.locator(".av-trace", { hasText: "QC rejected" });
  assert.ok(await trace.count() >= 1, "a held result names the QC failure");
  await mls.screenshot({ path: `${SHOTS}/qc-04-review-held.png`, fullPage: true });

  // Corrective action, then a good run: the lockout lifts.
  await mls.goto(lockoutUrl);
  await mls.selectOption("select[name=action]", "recalibrated");
  await mls.fill("textarea[name=note]", "K recalibrated after level 1 shift");
  await Promise.all([mls.waitForLoadState("load"), mls.click("button:has-text('corrective action')")]);
  const inputs = mls.locator("form[action='/qc/runs'] input[name^=value_]");
  const n = await inputs.count();
  assert.ok(n >= 1, "the lockout page has the QC entry form");
  for (let i = 0; i < n; i++) {
    const target = await inputs.nth(i).getAttribute("data-mean");
    await inputs.nth(i).fill(target ?? "4.0");
  }
  await Promise.all([mls.waitForLoadState("load"), mls.locator("form[action='/qc/runs'] button[type=submit]").click()]);
  await mls.goto(`${BASE}/qc`);
  assert.equal(await mls.locator("tr.qc-row-locked", { has: mls.locator("th", { hasText: /^K$/ }) }).count(), 0, "the lockout lifted");
});
