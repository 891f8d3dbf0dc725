# bench/plot.gp: docs/bench-latency.png from the data bench/summarize.py leaves in a results dir.
#   gnuplot -e "dir='RESULTS_DIR'; out='docs/bench-latency.png'" bench/plot.gp
# Left: publish -> last subscriber latency against the number of subscribers (fanout-1-N-1,
# QoS 0; medians of the repetitions). Right (when the saturation scenario ran): deliveries/s
# against the offered deliveries/s, per rate step.
load dir.'/plot_flags.gp'
set terminal pngcairo size 1400,560 font ',11' noenhanced
set output out
set datafile missing 'NaN'
set grid
set key top left
c_direct = '#555555'; c_proxy = '#1f77b4'; c_monitor = '#d62728'; c_intercept = '#2ca02c'
if (have_sat) { set multiplot layout 1,2 }

lat = dir.'/plot_latency.dat'
set title 'fanout-1-N-1, QoS 0: publish -> last subscriber'.(quick ? ' (quick run)' : '')
set xlabel 'subscribers (N)'
set ylabel 'latency (ms)'
set logscale xy
set xrange [0.7:1500]
set xtics ('1' 1, '10' 10, '100' 100, '1000' 1000)
# columns: N, then per target: client p50, client p99, wire p99
# client-side p99 (solid) and p50 (dashed); wire-level p99 (dotted) when the tap measured it
if (have_wire) {
plot lat u 1:3  w lp lw 2 pt 7 lc rgb c_direct  t 'direct p99', \
     lat u 1:2  w lp lw 1 dt 2 pt 6 lc rgb c_direct  t 'direct p50', \
     lat u 1:6  w lp lw 2 pt 7 lc rgb c_proxy   t 'proxy p99', \
     lat u 1:5  w lp lw 1 dt 2 pt 6 lc rgb c_proxy   t 'proxy p50', \
     lat u 1:9  w lp lw 2 pt 7 lc rgb c_monitor t 'monitor p99', \
     lat u 1:8  w lp lw 1 dt 2 pt 6 lc rgb c_monitor t 'monitor p50', \
     lat u 1:12 w lp lw 2 pt 7 lc rgb c_intercept t 'intercept p99', \
     lat u 1:11 w lp lw 1 dt 2 pt 6 lc rgb c_intercept t 'intercept p50', \
     lat u 1:4  w lp lw 1 dt 3 pt 4 lc rgb c_direct  t 'direct wire p99', \
     lat u 1:7  w lp lw 1 dt 3 pt 4 lc rgb c_proxy   t 'proxy wire p99', \
     lat u 1:10 w lp lw 1 dt 3 pt 4 lc rgb c_monitor t 'monitor wire p99', \
     lat u 1:13 w lp lw 1 dt 3 pt 4 lc rgb c_intercept t 'intercept wire p99'
} else {
plot lat u 1:3  w lp lw 2 pt 7 lc rgb c_direct  t 'direct p99', \
     lat u 1:2  w lp lw 1 dt 2 pt 6 lc rgb c_direct  t 'direct p50', \
     lat u 1:6  w lp lw 2 pt 7 lc rgb c_proxy   t 'proxy p99', \
     lat u 1:5  w lp lw 1 dt 2 pt 6 lc rgb c_proxy   t 'proxy p50', \
     lat u 1:9  w lp lw 2 pt 7 lc rgb c_monitor t 'monitor p99', \
     lat u 1:8  w lp lw 1 dt 2 pt 6 lc rgb c_monitor t 'monitor p50', \
     lat u 1:12 w lp lw 2 pt 7 lc rgb c_intercept t 'intercept p99', \
     lat u 1:11 w lp lw 1 dt 2 pt 6 lc rgb c_intercept t 'intercept p50'
}

if (have_sat) {
  unset logscale
  unset xrange
  set xtics autofreq
  set logscale xy
  set title 'saturation, 1 -> 1000: deliveries/s against offered'
  set xlabel 'offered deliveries/s'
  set ylabel 'deliveries/s (measured)'
  set format x '%.0s%c'
  set format y '%.0s%c'
  plot dir.'/plot_sat_direct.dat'  u 2:3 w lp lw 2 pt 7 lc rgb c_direct  t 'direct', \
       dir.'/plot_sat_proxy.dat'   u 2:3 w lp lw 2 pt 7 lc rgb c_proxy   t 'proxy', \
       dir.'/plot_sat_monitor.dat' u 2:3 w lp lw 2 pt 7 lc rgb c_monitor t 'monitor', \
       dir.'/plot_sat_intercept.dat' u 2:3 w lp lw 2 pt 7 lc rgb c_intercept t 'intercept', \
       x w l lw 1 dt 2 lc rgb '#999999' t 'offered'
  unset multiplot
}
