// MNIST-style preprocessing, the same recipe and arithmetic as lightning_digits/data/images.py (to_mnist):
// grayscale in [0, 1] -> white ink on black -> crop to the ink -> fit in 20x20 keeping the aspect ratio
// (separable triangle-filter resampling) -> centre of mass moved to pixel (14, 14) of 28x28.
// tests/test_web.py checks that both give the same 28x28 input for the same drawing.

export const MNIST_CENTRE = 14.0;
const INK_THRESHOLD = 0.2;
const INK_CONTRAST_PERCENTILE = 99.5;
const BOX = 20;
const SIDE = 28;

const roundHalfUp = (x) => Math.floor(x + 0.5);

// Pillow's "L" conversion (ITU-R 601-2 luma, fixed point), so a canvas reads as Pillow reads its PNG.
export function grayFromImageData(imageData) {
  const { data, width, height } = imageData;
  const gray = new Float64Array(width * height);
  for (let i = 0; i < width * height; i++) {
    const [r, g, b, a] = [data[4 * i], data[4 * i + 1], data[4 * i + 2], data[4 * i + 3]];
    // composite over white paper, as Python does for transparent images
    const over = (c) => Math.floor((c * a + 255 * (255 - a)) / 255 + 0.5);
    gray[i] = ((over(r) * 19595 + over(g) * 38470 + over(b) * 7471 + 0x8000) >> 16) / 255;
  }
  return gray;
}

function median(values) {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// numpy's default percentile: linear between the two nearest ranks, with numpy's arithmetic (from the nearer one).
function percentile(values, q) {
  const sorted = Float64Array.from(values).sort();
  const position = (q / 100) * (sorted.length - 1);
  const low = Math.floor(position);
  const [a, b] = [sorted[low], sorted[Math.min(low + 1, sorted.length - 1)]];
  const t = position - low;
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

// Weights [outSize][inSize] of a triangle filter widened by the scale when shrinking (antialiasing).
function resampleWeights(inSize, outSize) {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1.0);
  const weights = [];
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const row = new Float64Array(inSize);
    let total = 0;
    for (let i = 0; i < inSize; i++) {
      row[i] = Math.max(0, 1 - Math.abs(i + 0.5 - centre) / support);
      total += row[i];
    }
    for (let i = 0; i < inSize; i++) row[i] /= total;
    weights.push(row);
  }
  return weights;
}

function resize(image, height, width, outHeight, outWidth) {
  const wy = resampleWeights(height, outHeight);
  const wx = resampleWeights(width, outWidth);
  const rows = new Float64Array(outHeight * width); // vertical pass first, as the numpy code does
  for (let o = 0; o < outHeight; o++)
    for (let y = 0; y < height; y++) {
      const w = wy[o][y];
      if (w === 0) continue;
      for (let x = 0; x < width; x++) rows[o * width + x] += w * image[y * width + x];
    }
  const out = new Float64Array(outHeight * outWidth);
  for (let y = 0; y < outHeight; y++)
    for (let o = 0; o < outWidth; o++) {
      let sum = 0;
      for (let x = 0; x < width; x++) sum += wx[o][x] * rows[y * width + x];
      out[y * outWidth + o] = Math.min(1, Math.max(0, sum));
    }
  return out;
}

// gray: Float64Array [height * width] in [0, 1]. Returns Float32Array [784] in [0, 1], or null when blank.
export function toMnist(gray, width, height) {
  const border = [];
  for (let x = 0; x < width; x++) border.push(gray[x], gray[(height - 1) * width + x]);
  for (let y = 0; y < height; y++) border.push(gray[y * width], gray[y * width + width - 1]);
  const paper = median(border);
  // Ink is on the side of the paper's level with the strongest contrast (images.py, _ink_is_darker).
  const darker = percentile(gray.map((g) => paper - g), INK_CONTRAST_PERCENTILE);
  const brighter = percentile(gray.map((g) => g - paper), INK_CONTRAST_PERCENTILE);
  const light = darker >= brighter;
  const range = Math.max(light ? paper : 1 - paper, 1e-6);
  const ink = new Float64Array(width * height);
  let peak = 0;
  for (let i = 0; i < ink.length; i++) {
    ink[i] = Math.min(1, Math.max(0, (light ? paper - gray[i] : gray[i] - paper) / range));
    peak = Math.max(peak, ink[i]);
  }
  if (peak === 0) return null;
  let [top, bottom, left, right] = [height, -1, width, -1];
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      if (ink[y * width + x] > INK_THRESHOLD * peak) {
        top = Math.min(top, y); bottom = Math.max(bottom, y);
        left = Math.min(left, x); right = Math.max(right, x);
      }
  const [cropH, cropW] = [bottom - top + 1, right - left + 1];
  const crop = new Float64Array(cropH * cropW);
  for (let y = 0; y < cropH; y++)
    for (let x = 0; x < cropW; x++) crop[y * cropW + x] = ink[(top + y) * width + left + x];
  const factor = BOX / Math.max(cropH, cropW);
  const [fitW, fitH] = [Math.max(1, roundHalfUp(cropW * factor)), Math.max(1, roundHalfUp(cropH * factor))];
  const fitted = resize(crop, cropH, cropW, fitH, fitW);
  const canvas = new Float64Array(SIDE * SIDE);
  const [y0, x0] = [(SIDE - fitH) >> 1, (SIDE - fitW) >> 1];
  let [mass, my, mx] = [0, 0, 0];
  for (let y = 0; y < fitH; y++)
    for (let x = 0; x < fitW; x++) {
      const v = fitted[y * fitW + x];
      canvas[(y0 + y) * SIDE + x0 + x] = v;
      mass += v; my += (y0 + y) * v; mx += (x0 + x) * v;
    }
  const clip = (d) => Math.min(4, Math.max(-4, d));
  const dy = clip(roundHalfUp(MNIST_CENTRE - my / mass));
  const dx = clip(roundHalfUp(MNIST_CENTRE - mx / mass));
  const out = new Float32Array(SIDE * SIDE);
  for (let y = 0; y < SIDE; y++)
    for (let x = 0; x < SIDE; x++) {
      const sy = (y - dy + SIDE) % SIDE, sx = (x - dx + SIDE) % SIDE; // np.roll
      out[y * SIDE + x] = canvas[sy * SIDE + sx];
    }
  return out;
}
