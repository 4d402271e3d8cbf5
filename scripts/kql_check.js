#!/usr/bin/env node
// Parses and analyzes every KQL query of the project with Microsoft's own Kusto parser
// (Kusto.Language, compiled to JavaScript in the npm package @kusto/language-service-next,
// pinned in scripts/node/package.json and installed by scripts/dev-tools.sh into .venv/node/).
// Offline: no cluster, no workspace.
//
//   node scripts/kql_check.js            check everything below; exit 1 on any error
//   node scripts/kql_check.js FILE.kql   check only these files (their folder decides how)
//
// What is checked, and with what in front of the query (as the query really runs):
//   shared/hunting/*.kql            the `let` bindings of shared/src/domain/kql.rs (BINDINGS), as
//                                   HuntingQuery::render writes them; syntax + semantics against
//                                   the Advanced Hunting tables of scripts/kql_schema.json
//   infra/sentinel/activity/*.kql   let WindowStart/WindowEnd (datetime), BreakGlassAccounts (dynamic),
//                                   as the activity digest prepends them; syntax + semantics against
//                                   the Log Analytics tables of scripts/kql_schema.json
//   infra/sentinel/analytics/*.kql  nothing (Sentinel runs them as they are); syntax + semantics
//   infra/sentinel/workbook/*.json  every query item (type 3) of the workbook; syntax + semantics
//   shared/tests/data/sentinel/**/activity-rules/*.kql
//                                   the activity rules as `mss sentinel render` writes them (the
//                                   snapshots): runnable as they are, bindings included
// Semantics means: unknown tables, columns, functions or variables, wrong argument types,
// aggregates outside summarize, … — every diagnostic of severity Error fails the check.
// Warnings are printed and do not fail it (e.g. KS205 for a fuzzy union of an absent table).
// With semantics, the analyzer's result schema is checked too: an activity rule returns exactly
// TimeGenerated (datetime), Actor, Target, Operation, Detail (string), which the digest prints;
// an analytics rule returns every column its `// entities:` header maps.
"use strict";

const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const VENV = process.env.MSS_VENV || path.join(ROOT, ".venv");
const MODULES = process.env.MSS_NODE_MODULES || path.join(VENV, "node", "node_modules");
const PKG = path.join(MODULES, "@kusto", "language-service-next");

if (!fs.existsSync(path.join(PKG, "Kusto.Language.Bridge.js"))) {
  console.error(
    `kql_check: ${PKG} is missing: run scripts/dev-tools.sh (it runs npm ci for scripts/node/ into ${path.join(VENV, "node")}).`
  );
  process.exit(2);
}
require(path.join(PKG, "bridge.js"));
require(path.join(PKG, "Kusto.Language.Bridge.js"));
const K = global.Kusto.Language;
const S = K.Symbols;
const version = JSON.parse(fs.readFileSync(path.join(PKG, "package.json"), "utf8")).version;

// ---- the schema ------------------------------------------------------------------------------
const schema = JSON.parse(fs.readFileSync(path.join(__dirname, "kql_schema.json"), "utf8"));
function globalsFor(dbName) {
  const tables = schema[dbName];
  if (!tables) return null;
  const members = new (System.Collections.Generic.List$1(S.Symbol))();
  for (const [name, cols] of Object.entries(tables)) {
    members.add(S.TableSymbol.From(cols).WithName(name));
  }
  return K.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.$ctor1(dbName, members, false));
}
const LOG_ANALYTICS = globalsFor("loganalytics");
const DEFENDER = globalsFor("defender");

// ---- the bindings each folder's queries run with ----------------------------------------------
function huntingBindings() {
  // The names come from the Rust source, so a binding added there is checked here too.
  const src = fs.readFileSync(path.join(ROOT, "shared/src/domain/kql.rs"), "utf8");
  const m = src.match(/pub const BINDINGS: \[&str; \d+\] = \[([^\]]*)\]/);
  if (!m) throw new Error("shared/src/domain/kql.rs: BINDINGS not found");
  const names = [...m[1].matchAll(/"(\w+)"/g)].map((x) => x[1]);
  return names
    .map((n) =>
      n.startsWith("Window")
        ? `let ${n} = datetime(2026-11-01T00:00:00Z);`
        : `let ${n} = "x";`
    )
    .join("\n");
}
const ACTIVITY_BINDINGS = [
  "let WindowStart = datetime(2026-11-01T00:00:00Z);",
  "let WindowEnd = datetime(2026-11-02T00:00:00Z);",
  'let BreakGlassAccounts = dynamic(["break-glass@example.jp"]);',
].join("\n");

const KINDS = [
  { dir: "shared/hunting", ext: ".kql", prefix: huntingBindings(), globals: DEFENDER },
  { dir: "infra/sentinel/activity", ext: ".kql", prefix: ACTIVITY_BINDINGS, globals: LOG_ANALYTICS, activity: true },
  { dir: "infra/sentinel/analytics", ext: ".kql", prefix: "", globals: LOG_ANALYTICS },
  { dir: "infra/sentinel/workbook", ext: ".json", prefix: "", globals: LOG_ANALYTICS, workbook: true },
  { dir: "shared/tests/data/sentinel", ext: ".kql", prefix: "", globals: LOG_ANALYTICS, activity: true, recursive: true },
];

// ---- checking --------------------------------------------------------------------------------
function lineCol(text, offset) {
  const before = text.slice(0, Math.max(0, offset));
  const lines = before.split("\n");
  return `${lines.length}:${lines[lines.length - 1].length + 1}`;
}

function resultColumns(code) {
  const r = code.ResultType;
  const out = [];
  if (r && r.Columns) {
    for (let i = 0; i < r.Columns.Count; i++) {
      const c = r.Columns.getItem(i);
      out.push([c.Name, c.Type.Name]);
    }
  }
  return out;
}

function header(body, key) {
  const m = body.match(new RegExp(`^//\\s*${key}\\s*:(.*)$`, "m"));
  return m ? m[1].trim() : null;
}

const ACTIVITY_COLUMNS = "TimeGenerated:datetime, Actor:string, Target:string, Operation:string, Detail:string";

/** What the result schema must hold, per folder; returns error strings. */
function checkResult(kind, label, body, cols) {
  const errors = [];
  if (kind.activity) {
    const got = cols.map(([n, t]) => `${n}:${t}`).join(", ");
    if (got !== ACTIVITY_COLUMNS) errors.push(`${label}: returns (${got}); an activity rule must return (${ACTIVITY_COLUMNS})`);
  }
  if (kind.dir === "infra/sentinel/analytics") {
    const names = new Map(cols);
    for (const mapping of (header(body, "entities") || "").split(";")) {
      for (const pair of mapping.replace(/^[^:]*:/, "").split(",")) {
        const column = pair.split("=")[1];
        if (!column) continue;
        const t = names.get(column.trim());
        if (!t) errors.push(`${label}: entity column ${column.trim()} is not in the result (${[...names.keys()].join(", ")})`);
        else if (t === "dynamic") errors.push(`${label}: entity column ${column.trim()} is dynamic; map a scalar column`);
      }
    }
  }
  return errors;
}

/** Returns [errors, warnings] as printable strings. */
function check(kind, label, body, prefix, globals) {
  const full = prefix ? `${prefix}\n${body}` : body;
  const shift = prefix ? prefix.length + 1 : 0;
  const code = globals ? K.KustoCode.ParseAndAnalyze(full, globals) : K.KustoCode.Parse(full);
  const diags = code.GetDiagnostics();
  const errors = [];
  const warnings = [];
  for (let i = 0; i < diags.Count; i++) {
    const d = diags.getItem(i);
    const where = d.Start >= shift ? lineCol(body, d.Start - shift) : "(bindings)";
    const msg = `${label}:${where}: ${d.Code} ${d.Message}`;
    (d.Severity === "Error" ? errors : warnings).push(msg);
  }
  if (globals && errors.length === 0) errors.push(...checkResult(kind, label, body, resultColumns(code)));
  return [errors, warnings];
}

function workbookQueries(file, text) {
  const out = [];
  const walk = (items, trail) => {
    for (const it of items || []) {
      const name = it.name || "(unnamed)";
      if (it.type === 3 && it.content && typeof it.content.query === "string") {
        out.push([`${file}#${trail}${name}`, it.content.query]);
      }
      if (it.content && Array.isArray(it.content.items)) walk(it.content.items, `${trail}${name}/`);
    }
  };
  walk(JSON.parse(text).items, "");
  return out;
}

function kindOf(file) {
  const rel = path.relative(ROOT, path.resolve(file)).split(path.sep).join("/");
  return KINDS.find((k) => rel.startsWith(k.dir + "/") && rel.endsWith(k.ext));
}

let files = process.argv.slice(2);
if (files.length === 0) {
  for (const k of KINDS) {
    const walk = (dir) => {
      if (!fs.existsSync(dir)) return;
      for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const p = path.join(dir, e.name);
        if (e.isDirectory() && k.recursive) walk(p);
        else if (e.isFile() && e.name.endsWith(k.ext)) files.push(p);
      }
    };
    walk(path.join(ROOT, k.dir));
  }
}

let queries = 0;
let failed = 0;
let warned = 0;
const perKind = {};
for (const file of files) {
  const k = kindOf(file);
  if (!k) {
    console.error(`kql_check: ${file}: not in a folder this script knows (${KINDS.map((x) => x.dir).join(", ")})`);
    process.exit(2);
  }
  const rel = path.relative(ROOT, path.resolve(file));
  const text = fs.readFileSync(file, "utf8");
  const items = k.workbook ? workbookQueries(rel, text) : [[rel, text]];
  for (const [label, body] of items) {
    queries++;
    perKind[k.dir] = (perKind[k.dir] || 0) + 1;
    const [errors, warnings] = check(k, label, body, k.prefix, k.globals);
    for (const w of warnings) console.log(`warning: ${w}`);
    for (const e of errors) console.log(`error: ${e}`);
    warned += warnings.length;
    if (errors.length) failed++;
  }
}
for (const [dir, n] of Object.entries(perKind)) {
  const k = KINDS.find((x) => x.dir === dir);
  console.log(`kql_check: ${dir}: ${n} ${n === 1 ? "query" : "queries"} (${k.globals ? "syntax + semantics" : "syntax"})`);
}
console.log(
  `kql_check: ${queries} ${queries === 1 ? "query" : "queries"} with @kusto/language-service-next ${version}: ${failed} with errors, ${warned} warnings`
);
if (queries === 0) {
  console.error("kql_check: no query found");
  process.exit(1);
}
process.exit(failed ? 1 : 0);
