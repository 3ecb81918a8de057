// One specimen from order to released report, through the browser, as the lab does it:
// the phlebotomist registers, orders, labels and collects; the lab assistant receives;
// the technician enters results; the technologist verifies; the report shows them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BASE, SHOTS, signIn } from "./support.mjs";

const MRN = `E2E${Date.now() % 1000000}`;

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

test("a specimen goes from order to released report", async () => {
  // Phlebotomist: search first, then register, order a STAT BMP, print its label, collect it.
  const phleb = await signIn("phleb", "demo-tourniquet");
  await phleb.goto(`${BASE}/patients?q=${MRN}`);
  await phleb.click("text=Register a new patient");
  await phleb.fill("#mrn", MRN);
  await phleb.fill("#family_name", "Walkthrough");
  await phleb.fill("#given_name", "Eve");
  await phleb.fill("#birth_date", "1972-04-18");
  await phleb.check("input[name=sex][value=F]");
  await Promise.all([phleb.waitForURL(/\/patients\/\d+(\?.*)?$/), phleb.click("button:has-text('Register patient')")]);
  const patientUrl = phleb.url().split("?")[0];
  await shot(phleb, "01-patient-registered");
  await phleb.click("text=New order");
  await phleb.fill("#tests", "BMP");
  await phleb.fill("#provider", "Dr. E. Walker, ED");
  await phleb.check("input[name=priority][value=stat]");
  await Promise.all([phleb.waitForURL(/\/labels\?/), phleb.click("button:has-text('Place order')")]);
  const label = phleb.locator(".label-card").first();
  const accession = (await label.getAttribute("aria-label")).replace("Label ", "").trim();
  assert.match(accession, /^\d{2}-\d{7}-\d$/);
  assert.equal(await label.locator("svg").count(), 1, "the label carries a barcode");
  await shot(phleb, "02-labels");
  await phleb.goto(`${BASE}/collect?mrn=${MRN}`);
  await Promise.all([phleb.waitForLoadState("load"), phleb.click(`#c-${accession.replaceAll("-", "")}`)]);
  await shot(phleb, "03-collected");

  // Lab assistant: scan the tube, check two identifiers, receive.
  const assistant = await signIn("assistant", "demo-centrifuge");
  await assistant.goto(`${BASE}/receive`);
  await assistant.fill("#accession", accession);
  await assistant.fill("#mrn", MRN);
  await assistant.fill("#birth_date", "1972-04-18");
  await Promise.all([assistant.waitForLoadState("load"), assistant.click("button:has-text('Receive')")]);
  assert.match(await assistant.locator(".bigstatus").innerText(), /RECEIVED/);
  await shot(assistant, "04-received");

  // Technician: enter the panel; the flags show as typed, calculations follow.
  const tech = await signIn("tech", "demo-pipette-tip");
  await tech.goto(`${BASE}/specimens/${accession}/results`);
  const values = { NA: "140", K: "4.2", CL: "104", CO2: "24", BUN: "14", CREAT: "0.9", GLU: "90", CA: "9.5" };
  for (const [code, value] of Object.entries(values)) {
    const row = tech.locator("tbody tr", { has: tech.locator("th span.muted", { hasText: new RegExp(`^${code}$`) }) });
    await row.locator("input.cell").fill(value);
  }
  // The flag shows as typed: a critical potassium is marked before anything is saved.
  const k = tech.locator("tbody tr", { has: tech.locator("th span.muted", { hasText: /^K$/ }) });
  await k.locator("input.cell").fill("7.1");
  assert.match(await k.locator(".flag").innerText(), /CRIT H/);
  await k.locator("input.cell").fill("4.2");
  await shot(tech, "05-results-typed");
  await Promise.all([tech.waitForLoadState("load"), tech.click("button[type=submit]:has-text('Save')")]);
  assert.match(await tech.content(), /Saved/);
  await shot(tech, "06-results-saved");

  // Technologist: verify everything on this specimen from the review queue.
  const mls = await signIn("mls", "demo-westgard");
  await mls.goto(`${BASE}/review`);
  const rows = mls.locator("tr", { hasText: accession });
  const n = await rows.count();
  assert.ok(n >= 8, `the specimen's results wait for review (${n})`);
  for (let i = 0; i < n; i++) await rows.nth(i).locator("input[type=checkbox]").check();
  await shot(mls, "07-review");
  await Promise.all([mls.waitForLoadState("load"), mls.click("button:has-text('Verify')")]);
  assert.match(await mls.content(), /Released/);

  // The cumulative report shows the released values, as HTML and as PDF.
  await mls.goto(`${patientUrl}/report`);
  const report = await mls.content();
  assert.match(report, /Walkthrough/i);
  assert.match(report, /140/);
  assert.match(report, /FINAL/i);
  await shot(mls, "08-report");
  const pdf = await mls.request.get(`${patientUrl}/report.pdf`);
  assert.equal(pdf.status(), 200);
  assert.equal(pdf.headers()["content-type"], "application/pdf");
  assert.ok((await pdf.body()).subarray(0, 5).toString() === "%PDF-");
});
