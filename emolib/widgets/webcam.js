// emolib webcam widget (anywidget): live preview with getUserMedia, capture → JPEG bytes to Python.
//
// Model traits (see webcam.py): active (Python → JS: camera on/off), frame (JS → Python: JPEG bytes),
// capture_id (JS → Python: incremented on each capture), status / error (JS → Python), width, quality,
// mirror, button_label, inline_errors (show camera errors inside the widget too), live / live_width.
//
// Live mode (live = true): the current video frame, shrunk to live_width pixels, goes to Python as a
// custom message {type: "live-frame", id} with the JPEG as buffer; Python answers {type: "live-result",
// id, faces, error}. At most one frame is in flight: the next one is grabbed only when the answer has been
// drawn, so a slow model drops camera frames instead of queueing them. Boxes are drawn on a canvas over
// the video; the overlay's dataset counts frames sent and results drawn (read by tests and benches).

const MESSAGES = {
  insecure: "Camera unavailable: the browser only allows cameras on https or localhost pages.",
  NotAllowedError: "Camera permission denied: allow the camera for this page in the browser, then retry.",
  SecurityError: "Camera permission denied: allow the camera for this page in the browser, then retry.",
  NotFoundError: "No camera found: plug in a camera, or use the 📁 File mode.",
  OverconstrainedError: "No camera found that can give a video: use the 📁 File mode.",
  NotReadableError: "The camera is busy (another application may be using it): close it, then retry.",
  AbortError: "The camera could not start: retry, or use the 📁 File mode.",
};

function render({ model, el }) {
  el.classList.add("emolib-webcam");
  const root = document.createElement("div");
  root.style.cssText = "display:flex;flex-direction:column;gap:8px;align-items:flex-start;";
  const frame = document.createElement("div");
  frame.style.cssText =
    "position:relative;background:#222;border-radius:8px;overflow:hidden;max-width:100%;";
  const video = document.createElement("video");
  video.className = "emolib-webcam-video";
  video.autoplay = true;
  video.muted = true;
  video.playsInline = true;
  video.style.cssText = "display:block;max-width:100%;";
  const message = document.createElement("div");
  message.className = "emolib-webcam-message";
  message.style.cssText = "padding:4px 0;color:#444;";
  const row = document.createElement("div");
  row.style.cssText = "display:flex;gap:8px;";
  const capture = document.createElement("button");
  capture.className = "emolib-webcam-capture jupyter-button mod-primary";
  capture.style.cssText = "height:40px;min-width:150px;padding:0 16px;font-size:1rem;cursor:pointer;";
  const retry = document.createElement("button");
  retry.className = "emolib-webcam-retry jupyter-button";
  retry.textContent = "↻ Retry camera";
  retry.style.cssText = "height:40px;min-width:150px;padding:0 16px;font-size:1rem;cursor:pointer;display:none;";
  const overlay = document.createElement("canvas");
  overlay.className = "emolib-webcam-overlay";
  overlay.style.cssText = "position:absolute;left:0;top:0;pointer-events:none;";
  overlay.dataset.sent = "0";
  overlay.dataset.drawn = "0";
  overlay.latencies = [];  // ms from frame sent to its result drawn, last 200
  const liveStats = document.createElement("div");
  liveStats.className = "emolib-webcam-live-stats";
  liveStats.style.cssText = "font-size:0.9rem;color:#555;";
  frame.append(video, overlay);
  row.append(capture, retry);
  root.append(frame, row, liveStats, message);
  el.appendChild(root);

  let stream = null;
  let starting = false;
  let disposed = false;

  function setStatus(status, error = "") {
    model.set("status", status);
    model.set("error", error);
    model.save_changes();
    const shownError = model.get("inline_errors") ? error : "";
    message.textContent = shownError || (status === "starting" ? "Starting the camera…" : "");
    message.style.color = error ? "#b00020" : "#444";
    capture.disabled = status !== "live";
    capture.style.opacity = capture.disabled ? "0.45" : "1";
    capture.style.cursor = capture.disabled ? "not-allowed" : "pointer";
    frame.style.display = error ? "none" : "";
    retry.style.display = error ? "" : "none";
  }

  function applyLook() {
    capture.style.display = model.get("live") ? "none" : "";
    liveStats.style.display = model.get("live") ? "" : "none";
    capture.textContent = model.get("button_label") || "📸 Capture";
    video.style.width = `${model.get("width")}px`;
    video.style.transform = model.get("mirror") ? "scaleX(-1)" : "";
  }

  function stop() {
    if (stream) {
      for (const track of stream.getTracks()) track.stop();
    }
    stream = null;
    video.srcObject = null;
    clearOverlay();
    if (!disposed && model.get("status") !== "error") setStatus("stopped");
  }

  async function start() {
    if (stream || starting || disposed) return;
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setStatus("error", MESSAGES.insecure);
      return;
    }
    starting = true;
    setStatus("starting");
    try {
      const s = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false,
      });
      // hidden or disposed while the permission prompt was open: give the camera back at once
      if (disposed || !model.get("active") || document.hidden) {
        for (const track of s.getTracks()) track.stop();
        if (!disposed) setStatus("stopped");
        return;
      }
      stream = s;
      video.srcObject = s;
      await video.play().catch(() => {});
      setStatus("live");
      sendLiveFrame();
    } catch (err) {
      const text = MESSAGES[err && err.name] || `The camera could not start (${err && err.name}: ${err && err.message}).`;
      setStatus("error", text);
    } finally {
      starting = false;
    }
  }

  function sync() {
    if (model.get("active") && !document.hidden) start();
    else stop();
  }

  async function grab() {
    if (!stream || !video.videoWidth) return;
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) =>
      canvas.toBlob(resolve, "image/jpeg", model.get("quality")));
    if (!blob) return;
    const buffer = await blob.arrayBuffer();
    model.set("frame", new DataView(buffer));
    model.set("capture_id", (model.get("capture_id") || 0) + 1);
    model.save_changes();
  }

  // -- live mode ----------------------------------------------------------------------------------
  let inFlight = null;  // {id, sentAt, width, height} of the frame Python is working on
  let nextId = 1;
  let firstDrawnAt = 0;
  const liveCanvas = document.createElement("canvas");

  function clearOverlay() {
    overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  }

  async function sendLiveFrame() {
    if (inFlight || disposed || !model.get("live") || !stream || !video.videoWidth) return;
    const scale = Math.min(1, model.get("live_width") / video.videoWidth);
    const width = Math.round(video.videoWidth * scale);
    const height = Math.round(video.videoHeight * scale);
    const id = nextId++;
    inFlight = { id, sentAt: performance.now(), width, height };
    liveCanvas.width = width;
    liveCanvas.height = height;
    liveCanvas.getContext("2d").drawImage(video, 0, 0, width, height);
    const blob = await new Promise((resolve) => liveCanvas.toBlob(resolve, "image/jpeg", 0.8));
    if (!blob || !inFlight || inFlight.id !== id) { inFlight = null; return; }
    model.send({ type: "live-frame", id }, undefined, [await blob.arrayBuffer()]);
    overlay.dataset.sent = String(Number(overlay.dataset.sent) + 1);
    // a lost answer (kernel restarted) must not stop the loop forever
    setTimeout(() => { if (inFlight && inFlight.id === id) { inFlight = null; sendLiveFrame(); } }, 60000);
  }

  function drawFaces(faces, sent) {
    const shownWidth = video.clientWidth;
    const shownHeight = video.clientHeight;
    overlay.width = shownWidth;
    overlay.height = shownHeight;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, shownWidth, shownHeight);
    const sx = shownWidth / sent.width;
    const sy = shownHeight / sent.height;
    ctx.lineWidth = 3;
    ctx.font = "bold 16px sans-serif";
    ctx.textBaseline = "bottom";
    for (const face of faces) {
      const w = face.box.w * sx;
      const h = face.box.h * sy;
      const x = model.get("mirror") ? shownWidth - face.box.x * sx - w : face.box.x * sx;
      const y = face.box.y * sy;
      const text = `${face.emoji} ${face.label} ${face.confidence.toFixed(0)} %${face.uncertain ? " ?" : ""}`;
      ctx.strokeStyle = "#00e676";
      ctx.strokeRect(x, y, w, h);
      const textWidth = ctx.measureText(text).width + 8;
      const textX = Math.max(0, Math.min(x, shownWidth - textWidth));  // keep the label inside the video
      ctx.fillStyle = "rgba(0,0,0,0.65)";
      ctx.fillRect(textX, Math.max(0, y - 22), textWidth, 22);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, textX + 4, Math.max(22, y) - 3);
    }
  }

  function onLiveResult(msg) {
    if (!inFlight || msg.id !== inFlight.id) return;  // an answer to a frame given up on
    const sent = inFlight;
    inFlight = null;
    if (!model.get("live") || !stream) return;
    if (msg.error) {
      liveStats.textContent = `⚠️ ${msg.error}`;
      setTimeout(sendLiveFrame, 1000);
      return;
    }
    drawFaces(msg.faces, sent);
    const now = performance.now();
    const drawn = Number(overlay.dataset.drawn) + 1;
    overlay.dataset.drawn = String(drawn);
    overlay.latencies.push(now - sent.sentAt);
    if (overlay.latencies.length > 200) overlay.latencies.shift();
    if (drawn === 1) firstDrawnAt = now;
    const rate = drawn > 1 ? (drawn - 1) / ((now - firstDrawnAt) / 1000) : 0;
    liveStats.textContent = `🎥 ${msg.faces.length} face(s) · ${rate.toFixed(1)} updates/s · ` +
      `${(now - sent.sentAt).toFixed(0)} ms per frame`;
    requestAnimationFrame(sendLiveFrame);
  }

  function syncLive() {
    applyLook();
    inFlight = null;
    clearOverlay();
    sendLiveFrame();
  }

  capture.addEventListener("click", grab);
  retry.addEventListener("click", () => { model.set("status", "idle"); model.set("error", ""); sync(); });
  // Python can also ask for a capture (custom message {type: "capture"})
  const onMsg = (msg) => {
    if (msg && msg.type === "capture") grab();
    if (msg && msg.type === "live-result") onLiveResult(msg);
  };
  model.on("msg:custom", onMsg);
  model.on("change:active", sync);
  model.on("change:width change:mirror change:button_label", applyLook);
  model.on("change:live", syncLive);
  document.addEventListener("visibilitychange", sync);

  applyLook();
  sync();

  // cleanup: the view is removed (cell cleared, page closed, widget closed) → give the camera back
  return () => {
    disposed = true;
    document.removeEventListener("visibilitychange", sync);
    model.off("msg:custom", onMsg);
    model.off("change:active", sync);
    model.off("change:width change:mirror change:button_label", applyLook);
    model.off("change:live", syncLive);
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    video.srcObject = null;
  };
}

export default { render };
