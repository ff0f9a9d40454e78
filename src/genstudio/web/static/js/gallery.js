// The gallery of every studio page: that studio's results from GET /api/gallery?studio=..., newest first,
// paged by "Load more" along the server's `next` cursor, each asset shown once, with its empty and error
// states and delete. The page makes the card for an asset; the filtering is the server's.

import { api, fetchBlob, hasToken } from "./api.js";
import { make, show } from "./ui.js";

/** `?limit=N` in the page's address pages the gallery by N (1-200) instead of 12. */
export const PAGE_SIZE = Math.min(200, Math.max(1, Number(new URLSearchParams(location.search).get("limit")) || 12));

/** A card's error line (its .card-error); an empty message hides it. */
export function cardError(node, message) {
  const box = node.querySelector(".card-error");
  box.textContent = message;
  show(box, Boolean(message));
}

/** A download link that also works with an API token: a plain link without one, else a fetched blob. */
export function wireDownload(link, url, filename, node) {
  link.href = url;
  link.addEventListener("click", async (event) => {
    if (!hasToken()) return; // a plain link works without a token
    event.preventDefault();
    try {
      const blobUrl = URL.createObjectURL(await fetchBlob(url));
      const a = make("a");
      a.href = blobUrl;
      a.download = filename;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(blobUrl), 10_000);
    } catch (err) {
      cardError(node, err.message);
    }
  });
}

export class Gallery {
  /**
   * list, empty, error, more: the list, its "nothing yet" note, its error box and its "Load more" button.
   * studio: "image" | "music" | "faceswap"; kind: an asset kind to ask for as well, or null.
   * makeCard(item, {append}) -> the card node (append: it comes from a gallery page, not a new job).
   * onRemove(item, node): called after a card was deleted.
   * place(node, item, append): puts a new card in the page (default: at the end of the list with `append`,
   * else at its top), for a page that groups some results.
   */
  constructor({ list, empty, error, more, studio, kind = null, limit = PAGE_SIZE, makeCard, onRemove = null,
    place = null }) {
    Object.assign(this, { list, empty, error, more, studio, kind, limit, makeCard, onRemove });
    this.place = place || ((node, _item, append) => (append ? list.append(node) : list.prepend(node)));
    this.next = null;
    this.ids = new Set();
    this.objectUrls = new Map(); // asset id -> blob URLs made for its card
    more.addEventListener("click", () => this.load(true));
  }

  has(id) {
    return this.ids.has(id);
  }

  card(item, append) {
    const node = this.makeCard(item, { append });
    node.dataset.assetId = item.id;
    this.ids.add(item.id);
    return node;
  }

  /** The first page; with `more`, the page after the last one shown. */
  async load(more = false) {
    const query = new URLSearchParams({ studio: this.studio, limit: String(this.limit) });
    if (this.kind) query.set("kind", this.kind);
    if (more && this.next) query.set("before", this.next);
    this.more.disabled = true;
    try {
      const page = await api(`/api/gallery?${query}`);
      for (const item of page.items) {
        if (!this.ids.has(item.id)) this.place(this.card(item, true), item, true);
      }
      this.next = page.next;
      this.showError("");
    } catch (err) {
      this.showError(`Could not load the gallery: ${err.message}`);
    } finally {
      this.more.disabled = false;
      show(this.more, Boolean(this.next));
      this.updateEmpty();
    }
  }

  /** A job's new results, at the top. */
  async add(assetIds) {
    for (const id of assetIds) {
      if (this.ids.has(id)) continue;
      try {
        const item = await api(`/api/assets/${encodeURIComponent(id)}/meta`);
        this.place(this.card(item, false), item, false);
      } catch (err) {
        this.showError(err.message);
      }
    }
    this.updateEmpty();
  }

  /** Ask `question` (if any), delete the asset on the server (already gone counts as deleted), then drop
   *  its card. Resolves to whether it was removed; a failure shows on the card. */
  async remove(item, node, question) {
    if (question && !window.confirm(question)) return false;
    try {
      await api(`/api/assets/${encodeURIComponent(item.id)}`, { method: "DELETE" });
    } catch (err) {
      if (err.status !== 404) {
        cardError(node, err.message);
        return false;
      }
    }
    for (const url of this.objectUrls.get(item.id) || []) URL.revokeObjectURL(url);
    this.objectUrls.delete(item.id);
    this.ids.delete(item.id);
    node.remove();
    this.updateEmpty();
    if (this.onRemove) this.onRemove(item, node);
    return true;
  }

  /** A src for an <img> or <audio> showing asset `id` from `url`: the URL itself, or with an API token a
   *  blob URL (those elements cannot send the header), revoked when the card is deleted. */
  async src(id, url) {
    if (!hasToken()) return url;
    const objectUrl = URL.createObjectURL(await fetchBlob(url));
    this.objectUrls.set(id, [...(this.objectUrls.get(id) || []), objectUrl]);
    return objectUrl;
  }

  /** Show asset `item` in `img` (through a blob URL when a token is needed); a failure says so in the alt. */
  async setImage(img, item) {
    try {
      img.src = await this.src(item.id, item.url);
    } catch {
      img.alt = `${img.alt} (could not load)`;
    }
  }

  updateEmpty() {
    show(this.empty, this.list.children.length === 0);
  }

  showError(message) {
    this.error.textContent = message;
    show(this.error, Boolean(message));
  }
}
