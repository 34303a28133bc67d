version development
task t {
  command <<< mkdir -p outdir/inner; echo a > outdir/a.txt; echo b > outdir/inner/b.txt >>>
  output { Directory out = "outdir"  Array[File] listed = glob("outdir/*.txt") }
}
