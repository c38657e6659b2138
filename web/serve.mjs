#!/usr/bin/env node
// Serves the built page (dist/) and forwards /rpc to the chain and /store/* to the store's
// Kubo API, so the page talks to one origin (the local services send no CORS headers).
// It also serves /ecld-config.json: the deployment, and the RPC and store paths.
//
//   node serve.mjs --config ~/.local/share/ecld/client.toml [--port 5173] [--host 127.0.0.1]
//
// With --port 0 it picks a free port. It prints one ready line: {"url": "http://…"}.
import { createServer, request } from "node:http";
import { readFileSync, existsSync, statSync } from "node:fs";
import { dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const configPath = opt("config", process.env.ECLD_CONFIG);
if (configPath === undefined) {
  console.error("serve.mjs: pass --config <data>/client.toml (written by `ecld up`) or set ECLD_CONFIG");
  process.exit(2);
}
// client.toml holds flat `key = "value"` lines; relative paths are against the file.
const toml = Object.fromEntries(
  readFileSync(configPath, "utf8")
    .split("\n")
    .map((l) => /^\s*([a-z_]+)\s*=\s*"(.*)"\s*$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => [m[1], m[2]]),
);
const rel = (p) => resolve(dirname(configPath), p);
const rpc = new URL(process.env.ECLD_RPC ?? toml.rpc);
const store = new URL(process.env.ECLD_STORE ?? toml.store);
const deployment = JSON.parse(readFileSync(rel(process.env.ECLD_DEPLOYMENT ?? toml.deployment), "utf8"));
const pageConfig = JSON.stringify({ deployment, rpc: "/rpc", store: "/store" });
const root = resolve(here, opt("dist", "dist"));
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".json": "application/json" };

function forward(req, res, target, path) {
  const up = request(
    { protocol: target.protocol, hostname: target.hostname, port: target.port, method: req.method, path,
      headers: { ...req.headers, host: target.host } },
    (r) => { res.writeHead(r.statusCode ?? 502, r.headers); r.pipe(res); },
  );
  up.on("error", (e) => { res.writeHead(502, { "content-type": "text/plain" }); res.end(`upstream ${target.host}: ${e.message}`); });
  req.pipe(up);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  if (url.pathname === "/rpc") return forward(req, res, rpc, rpc.pathname);
  if (url.pathname.startsWith("/store/")) return forward(req, res, store, url.pathname.slice("/store".length) + url.search);
  if (url.pathname === "/ecld-config.json") {
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
    return res.end(pageConfig);
  }
  const file = normalize(join(root, url.pathname === "/" ? "index.html" : url.pathname));
  if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404, { "content-type": "text/plain" });
    return res.end("not found");
  }
  res.writeHead(200, {
    "content-type": types[extname(file)] ?? "application/octet-stream",
    "content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'",
    "x-content-type-options": "nosniff",
  });
  res.end(readFileSync(file));
});
server.listen(Number(opt("port", "5173")), opt("host", "127.0.0.1"), () => {
  const a = server.address();
  console.log(JSON.stringify({ url: `http://${a.address}:${a.port}` }));
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
