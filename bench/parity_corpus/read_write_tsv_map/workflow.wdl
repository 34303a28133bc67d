version 1.0
workflow w {
  Array[Array[String]] rows = [["a", "1"], ["b", "2"]]
  Map[String, String] m = {"x": "10", "y": "20"}
  call t { input: tsv = write_tsv(rows), map = write_map(m) }
  output { Array[Array[String]] rows_out = t.rows  Map[String, String] map_out = t.map_out }
}
task t {
  input { File tsv  File map }
  command <<< cat ~{tsv} > rows.tsv; cat ~{map} > map.tsv >>>
  output { Array[Array[String]] rows = read_tsv("rows.tsv")  Map[String, String] map_out = read_map("map.tsv") }
}
