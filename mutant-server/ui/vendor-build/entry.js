// The one export the page uses, as a global: `createScatterplot`.
import createScatterplot from 'regl-scatterplot';

globalThis.createScatterplot = createScatterplot;
