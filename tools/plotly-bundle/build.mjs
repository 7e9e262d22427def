// plotly.js with only the trace types CRM Lens draws: lib/crmlens/charts/plotly/plotly-crmlens.min.js.
// Run by `make plotly-bundle` (needs node and npm; not needed to run or test CRM Lens: the bundle is committed).
// The plotly.js version must be the one inside the plotly Python package (tests/unit/test_plotlyjs.py checks it).
// Settings follow plotly.js's own esbuild-config.js (its custom-bundle task is not in the npm package).
import { readFileSync, writeFileSync, renameSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import esbuild from "esbuild";
import { environmentPlugin } from "esbuild-plugin-environment";

const require = createRequire(import.meta.url);
const InlineCSSPlugin = require("esbuild-plugin-inline-css");
const here = path.dirname(fileURLToPath(import.meta.url));
// scatter is in plotly.js's core; a figure with any other type gets the whole plotly.js (crmlens.charts.plotlyjs)
const TRACES = ["bar", "heatmap", "histogram", "funnel", "waterfall", "treemap", "table"];
const version = JSON.parse(readFileSync(path.join(here, "node_modules/plotly.js/package.json"), "utf8")).version;
const target = path.resolve(here, "../../lib/crmlens/charts/plotly/plotly-crmlens.min.js");
const entry = [
  'var Plotly = require("plotly.js/lib/core");',
  `Plotly.register([${TRACES.map((t) => `require("plotly.js/lib/${t}")`).join(", ")}]);`,
  "module.exports = Plotly;",
].join("\n");
const all = ["scatter", ...TRACES];
await esbuild.build({
  stdin: { contents: entry, resolveDir: here, sourcefile: "crmlens-plotly-entry.js" },
  outfile: `${target}.tmp`,
  format: "iife", globalName: "Plotly", bundle: true, minify: true, sourcemap: false, target: "es2016",
  plugins: [InlineCSSPlugin(), environmentPlugin({ NODE_DEBUG: false })],
  alias: { regl: "@plotly/regl", stream: "stream-browserify" },
  define: { global: "window", "define.amd": "false" },
  banner: { js: `/**\n* plotly.js v${version}, CRM Lens bundle: ${all.join(", ")}\n` +
                "* Copyright 2012-2026, Plotly, Inc. All rights reserved. Licensed under the MIT license\n" +
                "* Built by tools/plotly-bundle/build.mjs from the plotly.js npm package (make plotly-bundle)\n*/" },
  footer: { js: `window.Plotly = Plotly;\nPlotly.crmlensTraces = ${JSON.stringify(all)};` },
  logLevel: "info",
});
renameSync(`${target}.tmp`, target);
console.log(`wrote ${path.relative(process.cwd(), target)}: plotly.js ${version}, traces ${all.join(", ")}`);
