version 1.0
task t {
  command <<< mkdir -p results; echo "report" > results/report.txt >>>
  output { File report = "results/report.txt"  String text = read_string(report) }
}
