import { defineConfig } from "vite";

export default defineConfig({
  resolve: { dedupe: ["viem"] },
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 700 },
});
