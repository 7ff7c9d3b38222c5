// emolib webcam widget (anywidget): live preview with getUserMedia, capture → JPEG bytes to Python.
//
// Model traits (see webcam.py): active (Python → JS: camera on/off), frame (JS → Python: JPEG bytes),
// capture_id (JS → Python: incremented on each capture), status / error (JS → Python), width, quality,
// mirror, button_label, inline_errors (show camera errors inside the widget too).

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
  frame.appendChild(video);
  row.append(capture, retry);
  root.append(frame, row, message);
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

  capture.addEventListener("click", grab);
  retry.addEventListener("click", () => { model.set("status", "idle"); model.set("error", ""); sync(); });
  // Python can also ask for a capture (custom message {type: "capture"})
  const onMsg = (msg) => { if (msg && msg.type === "capture") grab(); };
  model.on("msg:custom", onMsg);
  model.on("change:active", sync);
  model.on("change:width change:mirror change:button_label", applyLook);
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
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    video.srcObject = null;
  };
}

export default { render };
