// Which messages are selected: some IDs of the page, or every result of the list.

export class Selection {
  constructor(onChange) {
    this.ids = new Set();
    this.all = false; // every message of the list (all results of the search), not just these IDs
    this.anchor = null; // where a Shift-click range starts
    this.onChange = onChange;
  }

  get size() {
    return this.ids.size;
  }

  has(id) {
    return this.all || this.ids.has(id);
  }

  /** How many messages an action on the selection touches, given the list's `matching`. */
  count(matching) {
    return this.all ? matching : this.ids.size;
  }

  toggle(id) {
    this.all = false;
    if (this.ids.has(id)) this.ids.delete(id);
    else this.ids.add(id);
    this.anchor = id;
    this.onChange();
  }

  /** Select from the anchor to `id` in the page's `order` of IDs (Shift-click). */
  extend(id, order) {
    this.all = false;
    const from = order.indexOf(this.anchor ?? id);
    const to = order.indexOf(id);
    if (to < 0) return;
    const [low, high] = from < 0 ? [to, to] : [Math.min(from, to), Math.max(from, to)];
    for (const each of order.slice(low, high + 1)) this.ids.add(each);
    this.anchor = id;
    this.onChange();
  }

  setPage(ids) {
    this.all = false;
    this.ids = new Set(ids);
    this.onChange();
  }

  selectAll(ids) {
    this.ids = new Set(ids);
    this.all = true;
    this.onChange();
  }

  clear() {
    if (!this.ids.size && !this.all) return;
    this.ids.clear();
    this.all = false;
    this.anchor = null;
    this.onChange();
  }

  /** Forget IDs that left the page (deleted, or another page shown). */
  keepOnly(ids) {
    if (this.all) return;
    const before = this.ids.size;
    this.ids = new Set([...this.ids].filter((id) => ids.has(id)));
    if (this.ids.size !== before) this.onChange();
  }
}
