/**
 * A Vega-Lite spec as an SVG string, in Node, without a browser: vega-lite compiles it to Vega,
 * a headless Vega view (renderer 'none') runs its dataflow and writes the scene as SVG.
 *
 * The figures' data is inline, so the view must never load anything: its loader refuses every
 * URL, and a spec that asks for one fails here rather than fetching it. Warnings from either
 * library (e.g. a log scale given a zero) are returned, not printed, so the caller decides.
 */
import type * as Vega from 'vega';
import type { TopLevelSpec } from 'vega-lite';
import { MigrationError } from '@livemig/shared';

export interface RenderedSvg {
  svg: string;
  /** What vega-lite and vega warned about while compiling and rendering. */
  warnings: string[];
}

/** A vega logger that keeps warnings and errors instead of printing them. */
function collectingLogger(vega: typeof Vega, warnings: string[]): Vega.LoggerInterface {
  let level = vega.Warn;
  const logger: Vega.LoggerInterface = {
    level(next?: number) {
      if (next === undefined) return level;
      level = next;
      return logger;
    },
    error(...args: readonly unknown[]) {
      warnings.push(`error: ${args.map(String).join(' ')}`);
      return logger;
    },
    warn(...args: readonly unknown[]) {
      if (level >= vega.Warn) warnings.push(args.map(String).join(' '));
      return logger;
    },
    info() {
      return logger;
    },
    debug() {
      return logger;
    },
  } as Vega.LoggerInterface;
  return logger;
}

/**
 * A loader that loads nothing (a figure's data is inline, and a report must not fetch), and
 * notes each URL it was asked for: Vega only logs a failed load and draws without the data.
 */
function refusingLoader(vega: typeof Vega, refused: string[]): Vega.Loader {
  const loader = vega.loader();
  const refuse = async (uri: string): Promise<never> => {
    refused.push(uri);
    throw new MigrationError(
      'ERR_INVALID_ARGUMENT',
      `a figure asked to load ${uri}: figures are drawn from inline data only`,
    );
  };
  loader.load = refuse as Vega.Loader['load'];
  loader.sanitize = refuse as Vega.Loader['sanitize'];
  return loader;
}

/**
 * Render `spec` to an SVG document (`<svg …>…</svg>`); the view is finalized whatever happens.
 * Rejects with ERR_INVALID_ARGUMENT when the spec asks to load anything (data or an image by URL).
 */
export async function renderSvg(spec: TopLevelSpec): Promise<RenderedSvg> {
  // Loaded here, not at the top: every livemig process (each agent too) loads the CLI's modules,
  // and vega with d3 is some 200 of them, for `compare` alone.
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const warnings: string[] = [];
  const refused: string[] = [];
  const logger = collectingLogger(vega, warnings);
  const compiled = compile(spec, { logger }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', loader: refusingLoader(vega, refused), logger });
  try {
    const svg = await view.toSVG();
    if (refused.length > 0) {
      throw new MigrationError(
        'ERR_INVALID_ARGUMENT',
        `a figure asked to load ${refused.join(', ')}: figures are drawn from inline data only`,
      );
    }
    return { svg, warnings };
  } finally {
    view.finalize();
  }
}
