// The bench a lab runs all day: long and foreign names on every list, the critical banner with
// JavaScript off, the search field every page carries, the order search, and the audit view's
// readable change. Screenshots land in target/e2e-screenshots/bench-*.png.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BASE, SHOTS, api, signIn } from "./support.mjs";

const RUN = Date.now() % 1000000;
const shot = (page, name) => page.screenshot({ path: `${SHOTS}/bench-${name}.png`, fullPage: true });

const words = (n) => "Wolfeschlegelsteinhausen Bergerdorff Vanderbilt ".repeat(3).slice(0, n).trim();
// Names of 60 and 200 characters as printed ("FAMILY, Given"), one unbroken, and other scripts.
const PATIENTS = [
  { mrn: `L60-${RUN}`, family_name: words(30), given_name: words(28) },
  { mrn: `L200-${RUN}`, family_name: words(100), given_name: words(98) },
  { mrn: `LW-${RUN}`, family_name: "Ж".repeat(100), given_name: "w".repeat(98) },
  { mrn: `LPL-${RUN}`, family_name: "Żółć-Nguyễn", given_name: "Łukasz" },
  { mrn: `LGR-${RUN}`, family_name: "Αλεξίου Иванов", given_name: "Ψυχή" },
  { mrn: `LCN-${RUN}`, family_name: "王", given_name: "秀英" },
].map((p) => ({ ...p, birth_date: "1945-07-14", sex: "F" }));

// Each patient gets a STAT potassium, drawn, received and entered critical (so they are on the
// worklist, the review queue and the critical calls), and a sodium still to draw.
async function longNamedPatients() {
  const phleb = await signIn("phleb", "demo-tourniquet");
  const assistant = await signIn("assistant", "demo-centrifuge");
  const tech = await signIn("tech", "demo-pipette-tip");
  const toDraw = [];
  for (const p of PATIENTS) {
    const reg = await api(phleb, "POST", "/api/v1/patients", p);
    assert.equal(reg.status, 201, JSON.stringify(reg.json));
    const order = await api(phleb, "POST", "/api/v1/orders", { patient_id: reg.json.id, provider: "Dr. Long", priority: "stat", tests: ["K"] });
    assert.equal(order.status, 201, JSON.stringify(order.json));
    const acc = order.json.accessions[0];
    assert.equal((await api(phleb, "POST", `/api/v1/specimens/${acc}/collect`)).status, 200);
    const rec = await api(assistant, "POST", `/api/v1/specimens/${acc}/receive`, { mrn: p.mrn, birth_date: p.birth_date });
    assert.equal(rec.status, 200, JSON.stringify(rec.json));
    const res = await api(tech, "POST", `/api/v1/specimens/${acc}/results`, { results: [{ test_code: "K", value: "7.3" }] });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const draw = await api(phleb, "POST", "/api/v1/orders", { patient_id: reg.json.id, provider: "Dr. Long", priority: "routine", tests: ["NA"] });
    toDraw.push(draw.json.accessions[0]);
  }
  return toDraw;
}

async function assertFitsAndIdentifies(page, uri, name, patients) {
  await page.goto(`${BASE}${uri}`);
  const { scroll, inner } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  assert.ok(scroll <= inner, `${uri} is ${scroll} px wide in a ${inner} px window`);
  for (const p of patients) {
    const mrn = page.getByText(p.mrn, { exact: false }).first();
    await mrn.scrollIntoViewIfNeeded();
    assert.ok(await mrn.isVisible(), `${uri} shows MRN ${p.mrn}`);
    const row = page.locator("tr, .draw-group, .label-card", { hasText: p.mrn }).first();
    const text = await row.innerText();
    assert.ok(text.includes("14-Jul-1945"), `${uri}: ${p.mrn}'s row shows the date of birth: ${text}`);
    assert.ok(/Female|\bF\b/.test(text), `${uri}: ${p.mrn}'s row shows the sex: ${text}`);
    const family = p.family_name.toUpperCase().slice(0, 12);
    assert.ok(text.replace(/\s/g, "").includes(family.replace(/\s/g, "")), `${uri}: ${p.mrn}'s row names ${family}: ${text}`);
    const box = await row.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= inner + 1, `${uri}: ${p.mrn}'s row lies within the window`);
  }
  await shot(page, name);
}

test("long and non-Latin names fit every list with all four identifiers visible", async () => {
  const toDraw = await longNamedPatients();
  const mls = await signIn("mls", "demo-westgard");
  await assertFitsAndIdentifies(mls, "/worklist?bench=chemistry", "names-worklist", PATIENTS);
  await assertFitsAndIdentifies(mls, "/review", "names-review", PATIENTS);
  await assertFitsAndIdentifies(mls, "/critical", "names-critical", PATIENTS);
  await assertFitsAndIdentifies(mls, `/orders?provider=${encodeURIComponent("Dr. Long")}`, "names-orders", PATIENTS);
  await assertFitsAndIdentifies(mls, "/patients?q=wolfeschlegelsteinhausen", "names-patient-search", PATIENTS.slice(0, 2));
  await assertFitsAndIdentifies(mls, `/patients?q=${encodeURIComponent("ж".repeat(30))}`, "names-patient-search-unbroken", [PATIENTS[2]]);
  const phleb = await signIn("phleb", "demo-tourniquet");
  await assertFitsAndIdentifies(phleb, "/collect", "names-collect", PATIENTS);
  await assertFitsAndIdentifies(phleb, `/labels?${toDraw.map((a) => `acc=${a}`).join("&")}`, "names-labels", PATIENTS);
  // The label itself: the name never runs past the card, the identifiers stay inside it.
  for (const card of await phleb.locator(".label-card").all()) {
    const fits = await card.evaluate((c) => [...c.querySelectorAll(".l-ids span, .l-acc span")].every((s) => {
      const a = s.getBoundingClientRect(), b = c.getBoundingClientRect();
      return a.right <= b.right + 1 && a.bottom <= b.bottom + 1;
    }));
    assert.ok(fits, "MRN, date of birth, sex and accession lie within the label");
  }
  // The patient page's banner.
  await phleb.goto(`${BASE}/search?q=${encodeURIComponent(PATIENTS[1].mrn)}`);
  const width = await phleb.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(width, "the patient page fits the window");
  for (const label of ["Born", "Sex", "MRN"]) assert.ok(await phleb.locator(".banner", { hasText: label }).first().isVisible());
  await shot(phleb, "names-patient");
});

test("the critical banner shows with JavaScript off", async () => {
  const mls = await signIn("mls", "demo-westgard", { javaScriptEnabled: false });
  for (const uri of ["/review", "/patients", "/qc"]) {
    await mls.goto(`${BASE}${uri}`);
    const banner = mls.locator("#critical-banner a.critical-banner");
    assert.ok(await banner.isVisible(), `${uri}: the banner is drawn by the server`);
    assert.match(await banner.innerText(), /critical results? waiting for a call/);
  }
  await shot(mls, "banner-no-javascript");
});

test("a scan into the search field opens the specimen; an MRN the patient; orders are searched", async () => {
  const tech = await signIn("tech", "demo-pipette-tip");
  const found = await api(tech, "GET", "/api/v1/worklist?bench=chemistry");
  const item = found.json.items[0];
  assert.ok(item, "the demo has chemistry waiting");
  await tech.goto(`${BASE}/worklist`);
  await tech.keyboard.press("/");
  assert.equal(await tech.evaluate(() => document.activeElement.id), "global-q", "/ goes to the search field");
  // A scanner types the digits and Enter.
  await tech.keyboard.type(item.accession.replaceAll("-", ""));
  await Promise.all([tech.waitForURL(new RegExp(`/specimens/${item.accession}$`)), tech.keyboard.press("Enter")]);
  await shot(tech, "search-scan-opens-specimen");
  // "/" typed inside a field is a character, not a jump.
  await tech.goto(`${BASE}/orders`);
  await tech.click("#provider");
  await tech.keyboard.type("a/b");
  assert.equal(await tech.inputValue("#provider"), "a/b");
  await tech.fill("#provider", "");
  await tech.fill("#global-q", item.patient.mrn);
  await Promise.all([tech.waitForURL(/\/patients\/\d+$/), tech.press("#global-q", "Enter")]);
  await shot(tech, "search-mrn-opens-patient");
  await tech.goto(`${BASE}/orders?mrn=${encodeURIComponent(item.patient.mrn)}&test=${item.test_code}`);
  assert.ok(await tech.locator("table.order-results", { hasText: item.accession }).isVisible());
  await shot(tech, "orders-search");
  await tech.goto(`${BASE}/orders?test=NOPE&provider=Dr.%20Kept`);
  assert.ok(await tech.locator(".error-summary").isVisible());
  assert.equal(await tech.inputValue("#provider"), "Dr. Kept", "what was typed stays");
  await shot(tech, "orders-refused");
});

test("the audit view shows a change as field: old → new", async () => {
  // Magnesium, which no other browser test enters, so the edit changes nothing they judge.
  const sup = await signIn("super", "demo-levey-jennings");
  const mg = await api(sup, "GET", "/api/v1/catalog/tests/MG");
  const definition = { ...mg.json.definition, critical_high: "5.5" };
  const save = await api(sup, "PUT", "/api/v1/catalog/tests/MG", { expected_version: mg.json.version, definition, reason: "medical staff policy" });
  assert.equal(save.status, 200, JSON.stringify(save.json));
  await sup.goto(`${BASE}/audit?action=catalog.edit`);
  const change = sup.locator("ul.diff li", { hasText: "critical high" }).first();
  assert.ok(await change.isVisible(), "the change is listed field by field");
  assert.match(await change.innerText(), /critical high: .+ → 5\.5/);
  assert.ok(await sup.locator("ul.diff li", { hasText: "reason: (not set) → medical staff policy" }).first().isVisible());
  assert.equal(await sup.locator("details.recorded[open]").count(), 0, "the raw JSON stays folded");
  await shot(sup, "audit-diff");
});
