import { defineConfig } from 'vite'

// The console is served by dcepd under /console/ from assets embedded in the
// binary (node/console/console.go): relative asset paths, output in ../dist,
// no source maps, nothing fetched from the network at runtime.
export default defineConfig({
  base: './',
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    sourcemap: false,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 200,
  },
  server: {
    // `npm run dev` against a running node: DCEP_NODE=http://127.0.0.1:8108
    proxy: { '/dcep.node.v1.': process.env.DCEP_NODE || 'http://127.0.0.1:8108' },
  },
})
