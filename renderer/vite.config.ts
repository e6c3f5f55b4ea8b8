// Builds the Svelte renderer into dist/renderer. The same bundle is loaded by Electron
// (through the app's own protocol) and by `duoscale serve` (over HTTP), so every asset
// URL is relative (`base: './'`) and nothing is fetched from outside the bundle.
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: './',
  plugins: [svelte()],
  build: {
    outDir: fileURLToPath(new URL('../dist/renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 600,
  },
  server: { port: 5183, strictPort: false },
});
