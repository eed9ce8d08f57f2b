// Drawing frames and masks on canvases. Images are fetched as blobs and decoded off the main thread
// (createImageBitmap); a frame the stream has already trimmed draws as a grey placeholder.

/** Fetch an image URL and decode it; null when it is gone (404) or cannot be decoded. */
export async function loadBitmap(url) {
  if (!url) return null;
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return null;
    return await createImageBitmap(await response.blob());
  } catch (err) {
    return null;
  }
}

/** Free a decoded image's memory (bitmaps are not garbage-collected promptly). */
export function release(bitmap) {
  if (bitmap && typeof bitmap.close === "function") bitmap.close();
}

/**
 * Draw a frame and, if asked, its mask (a red RGBA overlay) scaled onto it.
 * The canvas takes the frame's size; returns true when a mask was drawn.
 */
export function paint(canvas, frame, mask, { showMask = true, opacity = 0.5, width, height } = {}) {
  const w = width || (frame ? frame.width : mask ? mask.width : canvas.width);
  const h = height || (frame ? frame.height : mask ? mask.height : canvas.height);
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext("2d");
  ctx.globalAlpha = 1;
  if (frame) {
    ctx.drawImage(frame, 0, 0, w, h);
  } else {
    ctx.fillStyle = "#3a414c";
    ctx.fillRect(0, 0, w, h);
    ctx.fillStyle = "#dfe5ee";
    ctx.font = `${Math.max(12, Math.round(h / 14))}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.fillText("frame no longer buffered", w / 2, h / 2);
  }
  if (!mask || !showMask || opacity <= 0) return false;
  ctx.globalAlpha = opacity;
  ctx.drawImage(mask, 0, 0, w, h);
  ctx.globalAlpha = 1;
  return true;
}

/** Draw a thumbnail (frame + mask) fitted into a small canvas, letterboxed. */
export function paintThumb(canvas, frame, mask, opacity) {
  const source = frame || mask;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#22272e";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!source) return;
  const scale = Math.min(canvas.width / source.width, canvas.height / source.height);
  const w = Math.round(source.width * scale);
  const h = Math.round(source.height * scale);
  const x = Math.round((canvas.width - w) / 2);
  const y = Math.round((canvas.height - h) / 2);
  if (frame) ctx.drawImage(frame, x, y, w, h);
  if (mask) {
    ctx.globalAlpha = Math.max(opacity, 0.4);
    ctx.drawImage(mask, x, y, w, h);
    ctx.globalAlpha = 1;
  }
}
