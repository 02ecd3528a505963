// The page: a drawing pad, the model's answer as it is drawn, and a bar per class. Where the server collects
// digits (demo --collect_dir), the user confirms or corrects each answer and the drawing is saved under its label.
// window.digits exposes the last input, probabilities and saved sample to the browser test.
import { grayFromImageData, toMnist } from "./preprocess.js";

const pad = document.getElementById("pad");
const context = pad.getContext("2d", { willReadFrequently: true });
const state = {
  session: null, classNames: [], drawing: false, pending: false, dirty: false, last: null, runs: 0,
  collecting: false, saving: false, saved: null,
};
window.digits = state;

function clearPad() {
  context.fillStyle = "#fff";
  context.fillRect(0, 0, pad.width, pad.height);
  state.last = null;
  document.getElementById("digit").textContent = "?";
  document.getElementById("confidence").textContent = "";
  renderBars(null);
  renderInput(null);
  renderCollect();
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * (pad.width / box.width), (event.clientY - box.top) * (pad.height / box.height)];
}

function startStroke(event) {
  event.preventDefault();
  pad.setPointerCapture?.(event.pointerId);
  state.drawing = true;
  const [x, y] = point(event);
  context.beginPath();
  context.moveTo(x, y);
  context.lineTo(x + 0.01, y);
  context.stroke();
  schedulePrediction();
}

function continueStroke(event) {
  if (!state.drawing) return;
  event.preventDefault();
  const [x, y] = point(event);
  context.lineTo(x, y);
  context.stroke();
  schedulePrediction();
}

function endStroke() {
  state.drawing = false;
  schedulePrediction();
}

// At most one prediction in flight; strokes drawn meanwhile trigger one more when it ends.
function schedulePrediction() {
  state.dirty = true;
  if (state.pending || !state.session) return;
  state.pending = true;
  requestAnimationFrame(async () => {
    while (state.dirty) {
      state.dirty = false;
      await predict();
    }
    state.pending = false;
  });
}

async function predict() {
  const image = context.getImageData(0, 0, pad.width, pad.height);
  const input = toMnist(grayFromImageData(image), pad.width, pad.height);
  if (input === null) return;
  const tensor = new ort.Tensor("float32", input, [1, 1, 28, 28]);
  const { logits } = await state.session.run({ image: tensor });
  const values = Array.from(logits.data);
  const peak = Math.max(...values);
  const exp = values.map((v) => Math.exp(v - peak));
  const total = exp.reduce((a, b) => a + b, 0);
  const probabilities = exp.map((v) => v / total);
  const best = probabilities.indexOf(Math.max(...probabilities));
  state.last = { input: Array.from(input), probabilities, predicted: best };
  state.runs += 1;
  document.getElementById("digit").textContent = state.classNames[best];
  document.getElementById("confidence").textContent = `${(100 * probabilities[best]).toFixed(1)}%`;
  renderBars(probabilities);
  renderInput(input);
  renderCollect();
}

// The label buttons can save only a drawing the model has answered, one at a time.
function renderCollect() {
  if (!state.collecting) return;
  const idle = state.last !== null && !state.saving;
  document.getElementById("confirm-digit").textContent = state.last ? state.classNames[state.last.predicted] : "?";
  document.querySelectorAll("#collect button").forEach((button) => { button.disabled = !idle; });
}

function renderCounts({ counts }) {
  const view = document.getElementById("counts");
  view.replaceChildren(...state.classNames.map((name, i) => {
    const item = document.createElement("span");
    item.id = `count-${i}`;
    item.textContent = `${name}: ${counts[String(i)]}`;
    return item;
  }));
}

// The drawing as drawn (the pad's PNG), stored by the server in its folder for `label`.
async function save(label) {
  state.saving = true;
  renderCollect();
  const status = document.getElementById("saved");
  try {
    const png = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
    const form = new FormData();
    form.append("file", png, "drawing.png");
    form.append("label", String(label));
    const answer = await fetch("samples", { method: "POST", body: form });
    const result = await answer.json();
    if (!answer.ok) throw new Error(result.detail);
    state.saved = result;
    status.textContent = `saved as ${state.classNames[label]} (${result.file})`;
    renderCounts(await (await fetch("samples")).json());
    clearPad();
  } catch (error) {
    status.textContent = `not saved: ${error.message}`;
  } finally {
    state.saving = false;
    renderCollect();
  }
}

async function startCollecting() {
  const answer = await fetch("samples");
  if (!answer.ok) return; // the server does not collect: the controls stay hidden
  state.collecting = true;
  const labels = document.getElementById("labels");
  labels.replaceChildren(...state.classNames.map((name, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.id = `label-${i}`;
    button.textContent = name;
    button.addEventListener("click", () => save(i));
    return button;
  }));
  document.getElementById("confirm").addEventListener("click", () => save(state.last.predicted));
  renderCounts(await answer.json());
  renderCollect();
  document.getElementById("collect").hidden = false;
}

function renderBars(probabilities) {
  const bars = document.getElementById("bars");
  bars.replaceChildren();
  const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  state.classNames.forEach((name, i) => {
    const p = probabilities ? probabilities[i] : 0;
    const row = document.createElement("div");
    row.className = i === best ? "bar top" : "bar";
    row.innerHTML = `<span class="label"></span><span class="track"><span class="fill"></span></span><span class="value"></span>`;
    row.querySelector(".label").textContent = name;
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".value").textContent = probabilities ? `${(100 * p).toFixed(1)}%` : "";
    bars.appendChild(row);
  });
}

function renderInput(input) {
  const view = document.getElementById("input").getContext("2d");
  const small = new ImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = input ? Math.round(255 * input[i]) : 0;
    small.data.set([v, v, v, 255], 4 * i);
  }
  const scratch = new OffscreenCanvas(28, 28);
  scratch.getContext("2d").putImageData(small, 0, 0);
  view.imageSmoothingEnabled = false;
  view.drawImage(scratch, 0, 0, 112, 112);
}

async function main() {
  context.lineWidth = pad.width / 14; // about two MNIST pixels, MNIST's own stroke width
  context.lineCap = "round";
  context.lineJoin = "round";
  context.strokeStyle = "#000";
  const metadata = await (await fetch("model/metadata.json")).json();
  state.classNames = JSON.parse(metadata.class_names);
  ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a plain local server lacks
  ort.env.wasm.wasmPaths = new URL("node_modules/onnxruntime-web/dist/", document.baseURI).href;
  state.session = await ort.InferenceSession.create("model/digits_cnn.onnx", { executionProviders: ["wasm"] });
  const accuracy = metadata.test_accuracy ? `, test accuracy ${(100 * Number(metadata.test_accuracy)).toFixed(2)}%` : "";
  document.getElementById("model-note").textContent =
    `digits_cnn.onnx (${metadata.dataset || "mnist"}${accuracy} according to its metadata)`;
  clearPad();
  pad.addEventListener("pointerdown", startStroke);
  pad.addEventListener("pointermove", continueStroke);
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointerleave", endStroke);
  document.getElementById("clear").addEventListener("click", clearPad);
  await startCollecting();
  document.getElementById("status").textContent = "ready";
  state.ready = true;
}

main().catch((error) => {
  document.getElementById("model-note").textContent = `Could not load the model: ${error}`;
  state.error = String(error);
});
