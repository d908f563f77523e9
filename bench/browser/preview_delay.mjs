// How late the control surface's preview is: headless Chromium opens the page of a
// running daemon and, from inside the page, sends fades to black and back
// (`duration_s: 0`, `?wait=true`) and watches the preview <img> (drawn into a small canvas
// every 5 ms) until its mean brightness shows the fade. Prints one JSON object:
// {"samples": [{"visible_ms", "cue_ms"}]}, where visible_ms runs from sending the cue to
// the page showing it and cue_ms is the API's own arrival → frame latency for that cue.
//
//   CUECAST_URL=http://127.0.0.1:PORT CUECAST_NODE_TOOLS=.../node_modules node preview_delay.mjs N

import { createRequire } from 'node:module';
import { join } from 'node:path';

const base = process.env.CUECAST_URL;
const rounds = Number(process.argv[2] || 20);
const { chromium } = createRequire(join(process.env.CUECAST_NODE_TOOLS, 'resolve.js'))('playwright-core');

const browser = await chromium.launch({
  executablePath: process.env.CUECAST_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.getElementById('preview').naturalWidth > 0, null, { timeout: 30000 });
  const samples = await page.evaluate(async (n) => {
    const img = document.getElementById('preview');
    const canvas = document.createElement('canvas');
    canvas.width = 32;
    canvas.height = 18;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const brightness = () => {
      ctx.drawImage(img, 0, 0, 32, 18);
      const d = ctx.getImageData(0, 0, 32, 18).data;
      let sum = 0;
      for (let i = 0; i < d.length; i += 4) sum += (d[i] + d[i + 1] + d[i + 2]) / 3;
      return sum / (d.length / 4);
    };
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const out = [];
    for (let i = 0; i < n * 2; i += 1) {
      const black = i % 2 === 0;
      const sent = performance.now();
      const answer = fetch('/api/v1/cues?wait=true', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'fade', to: black ? 'black' : 'program', duration_s: 0 }),
      }).then((r) => r.json());
      let visible = null;
      while (performance.now() - sent < 5000) {
        const b = brightness();
        if (black ? b < 20 : b > 40) {
          visible = performance.now() - sent;
          break;
        }
        await sleep(5);
      }
      const cue = (await answer).cues[0].latency_ms;
      if (visible === null) throw new Error(`the preview never showed fade ${i} (to ${black ? 'black' : 'program'})`);
      out.push({ visible_ms: visible, cue_ms: cue });
      await sleep(200 + ((i * 53) % 100));
    }
    return out;
  }, rounds);
  console.log(JSON.stringify({ samples }));
} finally {
  await browser.close();
}
