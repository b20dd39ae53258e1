/// <reference lib="dom" />
/** Live charts (uPlot) fed by the workspace's stats stream (SSE, one event a second). */
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { stream, type Json } from './api.ts';

/** Two minutes at one point a second. */
const KEEP = 120;

interface ChartSpec {
  title: string;
  series: { label: string; value: (e: Json) => number; stroke: string }[];
  unit: (v: number) => string;
}

const kib = (v: number) => (v >= 1048576 ? `${(v / 1048576).toFixed(1)} MiB/s` : `${(v / 1024).toFixed(1)} KiB/s`);

const CHARTS: ChartSpec[] = [
  { title: 'CPU', series: [{ label: 'CPU %', value: (e) => Number(e.cpu_usage ?? 0), stroke: '#e8590c' }], unit: (v) => `${v.toFixed(0)}%` },
  { title: 'Memory', series: [{ label: 'Used MB', value: (e) => Number(e.memory_used_mb ?? 0), stroke: '#1c7ed6' }], unit: (v) => `${v.toFixed(0)} MB` },
  { title: 'Disk', series: [{ label: 'Used %', value: (e) => Number(e.disk_usage ?? e.guest_disk_used_pct ?? 0), stroke: '#2f9e44' }], unit: (v) => `${v.toFixed(1)}%` },
  {
    title: 'Network',
    series: [
      { label: 'In', value: (e) => Number(e.network_rx_bps ?? 0), stroke: '#7048e8' },
      { label: 'Out', value: (e) => Number(e.network_tx_bps ?? 0), stroke: '#d6336c' },
    ],
    unit: kib,
  },
];

function Chart(props: { spec: ChartSpec; data: number[][]; width: number }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const axisColor = getComputedStyle(document.body).getPropertyValue('--fg').trim() || '#888';
    plot.current = new uPlot({
      width: props.width, height: 160,
      series: [{}, ...props.spec.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, value: (_u: uPlot, v: number | null) => (v === null ? '–' : props.spec.unit(v)) }))],
      axes: [{ stroke: axisColor }, { stroke: axisColor, size: 70, values: (_u: uPlot, vals: number[]) => vals.map((v) => props.spec.unit(v)) }],
      scales: { x: { time: true } },
      legend: { show: true },
    }, props.data as uPlot.AlignedData, host.current!);
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => { plot.current?.setData(props.data as uPlot.AlignedData); }, [props.data]);
  useEffect(() => { plot.current?.setSize({ width: props.width, height: 160 }); }, [props.width]);
  return h('figure', { class: 'chart', 'data-chart': props.spec.title, 'data-points': String(props.data[0]?.length ?? 0) },
    h('figcaption', null, props.spec.title), h('div', { ref: host }));
}

export function MetricsTab(props: { id: string; running: boolean }) {
  const [data, setData] = useState<number[][][]>(() => CHARTS.map((c) => [[], ...c.series.map(() => [])]));
  const [last, setLast] = useState<Json | null>(null);
  const [state, setState] = useState('connecting');
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(600);

  useEffect(() => {
    const measure = () => {
      const w = box.current?.clientWidth ?? 600;
      setWidth(Math.max(260, Math.floor(w >= 900 ? w / 2 - 24 : w - 16)));
    };
    measure();
    const ro = new ResizeObserver(measure);
    if (box.current) ro.observe(box.current);
    return () => ro.disconnect();
  }, []);

  useEffect(() => {
    if (!props.running) return;
    const close = stream(`/workspace/${encodeURIComponent(props.id)}/stats/stream?interval_ms=1000`, (e) => {
      if (e.cpu_usage === undefined) return;
      setState('live');
      setLast(e);
      const t = e.timestamp ? Date.parse(String(e.timestamp)) / 1000 : Date.now() / 1000;
      setData((prev) => prev.map((series, i) => {
        const spec = CHARTS[i]!;
        const next = [[...series[0]!, t].slice(-KEEP), ...spec.series.map((s, j) => [...series[j + 1]!, s.value(e)].slice(-KEEP))];
        return next;
      }));
    }, () => setState('reconnecting'));
    return close;
  }, [props.id, props.running]);

  if (!props.running) return h('p', { class: 'muted' }, 'Metrics are live while the workspace runs. Start it to see them.');
  return h('div', { class: 'metrics', ref: box },
    h('p', { class: 'muted' }, h('span', { class: 'badge', 'data-state': state }, state),
      last ? ` ${last.processes ?? '?'} processes · memory limit ${Number(last.memory_total_mb ?? 0).toFixed(0)} MB · up ${last.uptime ?? '?'} s` : ''),
    h('div', { class: 'charts' }, CHARTS.map((spec, i) => h(Chart, { spec, data: data[i]!, width, key: spec.title }))));
}
