version 1.0
task t {
  input { Int n = 3 }
  command <<< seq ~{n} > nums.txt >>>
  output {
    Array[String] lines = read_lines("nums.txt")
    Int count = length(lines)
    String last = lines[count - 1]
    File nums = "nums.txt"
    Array[String] again = read_lines(nums)
  }
}
