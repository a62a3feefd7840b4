import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The built console is committed (dist/) and embedded in the binary, so a
// machine without Node serves it; CI rebuilds it and compares.
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    // The engine sends a strict Content-Security-Policy: no inline script.
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: { '/v1': 'http://127.0.0.1:8080', '/hooks': 'http://127.0.0.1:8080' },
  },
});
