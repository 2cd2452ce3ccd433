// Plots drawn when they are (nearly) on screen and out of date, one per frame, so a large
// study's page answers clicks and scrolling while its figures are drawn. Each plot div
// carries data-dirty="1" from the moment its data changed until it is drawn again.

let loading = null;

/** Run plotly.js (downloaded early by the page's preload link) once a page needs charts:
 * the list of studies never does, and a study's header and table show before the 4.7 MB
 * script is parsed. Resolves with the Plotly object. */
export function loadPlotly() {
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      if (window.Plotly) return resolve(window.Plotly);
      const link = document.getElementById("plotly-js");
      const script = document.createElement("script");
      script.src = link ? link.href : "/dashboard/assets/plotly.min.js";
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => reject(new Error("plotly.js did not load"));
      document.head.append(script);
    });
  }
  return loading;
}

export class LazyPlots {
  /** ``draw(id)`` draws the plot ``id`` (returning false when it waits for data that is
   * still on the way: it stays marked out of date); plots are watched through their cards. */
  constructor(draw) {
    this.draw = draw;
    this.ids = [];
    this.visible = new Set();
    this.dirty = new Set();
    this.busy = false;
    this.stopped = false;
    this.observer = new IntersectionObserver((entries) => this._seen(entries), { rootMargin: "400px 0px" });
  }

  watch(id) {
    const div = document.getElementById(id);
    if (!div) return;
    this.ids.push(id);
    div.closest(".card").dataset.plot = id;
    this.observer.observe(div.closest(".card"));
  }

  _seen(entries) {
    for (const e of entries) {
      const id = e.target.dataset.plot;
      if (e.isIntersecting) this.visible.add(id);
      else this.visible.delete(id);
    }
    this.pump();
  }

  /** Mark every plot out of date; those on screen are drawn again. */
  invalidate() {
    for (const id of this.ids) {
      this.dirty.add(id);
      document.getElementById(id).dataset.dirty = "1";
    }
    this.pump();
  }

  pump() {
    if (this.busy || this.stopped || !window.Plotly) return;
    const id = this.ids.find((i) => this.dirty.has(i) && this.visible.has(i));
    if (!id) return;
    this.busy = true;
    requestAnimationFrame(() => {
      this.busy = false;
      if (this.stopped) return;
      this.dirty.delete(id);
      const div = document.getElementById(id);
      let drawn = true;
      try {
        drawn = this.draw(id) !== false; // false: its data is still on the way
      } finally {
        div.dataset.dirty = drawn ? "0" : "1";
      }
      setTimeout(() => this.pump(), 0); // let input events in between two plots
    });
  }

  stop() {
    this.stopped = true;
    this.observer.disconnect();
    for (const id of this.ids) {
      const div = document.getElementById(id);
      if (div && window.Plotly) Plotly.purge(div);
    }
  }
}
