version 1.0
task t {
  command <<< echo '[{"k": 1}, {"k": 2}]' > a.json; echo '{"nested": {"x": [1, 2]}}' > o.json >>>
  output { Array[Map[String, Int]] arr = read_json("a.json")  Int x1 = read_json("o.json")["nested"]["x"][1] }
}
